//! The tracker worker: a control thread that runs announces for the shards.
//! (Being written.)
