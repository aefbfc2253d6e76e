//! The Sprites (sprites.dev) backend plugin for clauderon.
