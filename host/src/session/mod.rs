//! Sessions: ids, names, options and the status state machine.
