//! Helpers shared by the integration tests that start real `dartwing` processes.

pub mod vault;
