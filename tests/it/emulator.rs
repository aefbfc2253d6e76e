//! The emulator over real HTTP and WebSocket: endpoints, isolation, lifecycle, faults.
