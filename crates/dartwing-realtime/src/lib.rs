//! Dartwing realtime capability (not implemented yet).
