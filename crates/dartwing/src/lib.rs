//! The `dartwing` binary's library: configuration loading, secrets of the embedded default,
//! wiring of roles into one server, and the command-line interface.

pub mod cli;
mod cluster;
pub mod node;
mod platform;
pub mod secrets;
pub mod server;
pub mod settings;
