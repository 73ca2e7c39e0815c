//! Dartwing integrations capability (not implemented yet).
