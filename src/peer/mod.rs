//! The per-peer connection state machine, sans-IO. (Being written.)
