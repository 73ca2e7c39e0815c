//! Dartwing sync capability (not implemented yet).
