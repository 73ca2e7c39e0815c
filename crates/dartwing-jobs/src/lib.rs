//! Dartwing jobs capability (not implemented yet).
