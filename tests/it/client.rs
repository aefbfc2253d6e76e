//! The Sprites client (`clauderon_sprites::client`) against the real emulator over loopback.
