//! Starting a `sprites-emulator` child process on loopback for a test.
