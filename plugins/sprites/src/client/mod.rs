//! A faithful client of the public Sprites API (sprites.dev): REST, exec WebSockets, checkpoints, fs.
