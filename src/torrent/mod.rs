//! Per-torrent download bookkeeping, pure data structures (no IO, no clock):
//! bitfields, piece geometry, availability ordering, block states of pieces in
//! progress, and the rarest-first piece picker built from them.

pub mod bitfield;
pub mod rng;
pub mod availability;
pub mod geometry;
pub mod partial;
pub mod requesters;
