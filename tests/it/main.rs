//! One integration-test binary for the whole workspace (fewer links on two cores).
