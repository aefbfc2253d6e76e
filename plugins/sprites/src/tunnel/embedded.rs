//! The static relay built into the plugin by `build.rs` (a nested `cargo build` of
//! `plugins/sprites/relay` with `crt-static` and size settings), so the plugin library carries the
//! exact relay it was built with and needs no file beside it.

/// The relay executable, or `None` when the build could not make a static one.
pub fn relay() -> Option<&'static [u8]> {
    static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clauderon-relay"));
    (!BYTES.is_empty()).then_some(BYTES)
}

/// How it was built (`static x86_64-unknown-linux-musl build`), or why there is none.
pub fn build_note() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/clauderon-relay.note"))
}
