//! Per-torrent download bookkeeping, pure data structures (no IO, no clock):
//! bitfields, piece geometry, availability ordering, block states of pieces in
//! progress, and the rarest-first piece picker built from them.

pub mod availability;
pub mod bitfield;
pub mod geometry;
pub mod in_progress;
pub mod partial;
pub mod piece_picker;
pub mod requesters;

pub use crate::rng::Rng;
pub use bitfield::{Bitfield, BitfieldError};
pub use geometry::{BlockRequest, Geometry, GeometryError, BLOCK_BYTES};
pub use piece_picker::{BlockOutcome, InvariantError, PickerError, PiecePicker};
pub use requesters::{PeerKey, Requesters};
