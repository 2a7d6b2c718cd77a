//! The daemon's core loop. STUB.
