//! Plugin loading through the real loader: the Sprites plugin and the bad-plugin fixtures.
