//! The swarm load generator (issue 4), sans-IO parts: a deterministic
//! payload and its torrent, synthetic leecher and seed state machines, and
//! the report (goodput, fairness, latency). The IO driver lives in
//! `runtime/loadgen/`. (Being written.)

pub mod histogram;
pub mod leecher;
pub mod order;
pub mod payload;
pub mod payload_cache;
pub mod plot;
pub mod report;
pub mod seed;
pub mod torrent_set;
