//! Helpers shared by the system tests: the stack lives in `careers-stack`, shared with
//! the benches.

pub use careers_stack::*;
