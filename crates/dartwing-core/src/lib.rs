//! Shared domain of the Dartwing runtime.
//!
//! Everything every capability needs and nothing that ties it to an I/O framework:
//! tenancy types, the permission module (the single place that decides access), the
//! error type mapped once to HTTP by `dartwing-http`, configuration structs, time and ids,
//! and the small traits through which capabilities talk to each other.

pub mod access;
pub mod config;
pub mod error;
pub mod identity;
pub mod ids;
pub mod jobs;
pub mod names;
pub mod permission;
pub mod publish;
pub mod tenancy;
pub mod time;

pub use error::{Error, ErrorKind, Result};
pub use permission::{Action, EnqueuePolicy, Membership, PersonView, Principal, PrincipalKind, Witness};
pub use time::Timestamp;
