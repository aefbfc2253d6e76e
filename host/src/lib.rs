//! clauderon: the host. It owns config, secrets, the session store, the daemon's API and the
//! CLI; sandbox backends are plugins loaded through `clauderon-plugin-api`.
