//! `Waker`: an eventfd another thread writes to wake a shard's ring.
//! (Being written.)
