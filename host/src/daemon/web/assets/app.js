// The web UI's entry: `/` the session list, `/new` the create form, `/caches` the build caches,
// `/s/NAME` a session's page.
// Each is a full page load (links are plain links); leaving a page closes its streams.

import './csp.js';
import { api } from './api.js';
import { listPage } from './list.js';
import { createPage } from './create.js';
import { cachesPage } from './caches.js';
import { sessionPage } from './session.js';

const main = document.getElementById('main');
const path = location.pathname;

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    await api('POST', '/api/web/logout', {});
  } finally {
    location.href = '/';
  }
});

if (path === '/') {
  listPage(main);
} else if (path === '/new') {
  createPage(main);
} else if (path === '/caches') {
  cachesPage(main);
} else if (path.startsWith('/s/')) {
  sessionPage(main, decodeURIComponent(path.slice(3)));
}
