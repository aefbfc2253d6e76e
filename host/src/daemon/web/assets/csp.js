// Runs first (app.js imports it before anything else). The page's Content-Security-Policy
// allows no inline styles. xterm.js (vendored) styles its renderer two ways that such a policy
// blocks: it creates <style> elements, and it writes `style` attributes for 24-bit colours.
// <style> elements get this page's nonce (the server put it on the stylesheet link; only this
// script reads it), and `style` attributes become CSSOM writes, which the policy permits.

const link = document.querySelector('link[nonce]');
const nonce = link ? link.nonce : '';
const setAttribute = Element.prototype.setAttribute;
const createElement = Document.prototype.createElement;

Document.prototype.createElement = function (tagName, options) {
  const el = createElement.call(this, tagName, options);
  // The nonce must be on the element before it is inserted.
  if (nonce && el instanceof HTMLStyleElement) setAttribute.call(el, 'nonce', nonce);
  return el;
};

Element.prototype.setAttribute = function (name, value) {
  if (this instanceof HTMLElement && String(name).toLowerCase() === 'style') {
    this.style.cssText = String(value);
    return;
  }
  setAttribute.call(this, name, value);
};
