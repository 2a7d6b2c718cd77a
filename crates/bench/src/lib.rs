//! ringseed-bench: the swarm load generator and its report.
//!
//! `loadgen` holds the sans-IO parts (payload, synthetic leechers and
//! seeds, the report and plots); `driver` runs them on io_uring loops,
//! threads and sockets from the engine's runtime. Nothing in the engine
//! depends on this crate.

pub mod driver;
pub mod loadgen;
