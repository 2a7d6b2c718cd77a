//! `RecvRing`: a ring of provided buffers (IORING_REGISTER_PBUF_RING) for
//! multishot receives. The kernel takes a buffer only when bytes arrive, so
//! an idle connection holds none: thousands of connections share a ring
//! sized for the traffic, not for the connection count.
//!
//! Ownership: all buffers start in the kernel's hands. A receive completion
//! names the buffer it filled (`cqueue::buffer_select`); that buffer then
//! belongs to the caller until it gives it back with
//! [`RecvRing::give_back`], which appends it at the ring's tail. The ring
//! and the buffers are one allocation each, never moved; the event loop
//! unregisters the ring before freeing them, or leaks both if ops are still
//! in flight when it is dropped.

use std::alloc::{self, Layout};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// Most buffers in one ring (the kernel's limit is 2^15).
pub const RECV_RING_ENTRIES_MAX: u16 = 1 << 15;
/// Largest buffer of a ring, in bytes.
pub const RECV_RING_BUFFER_BYTES_MAX: usize = 1 << 20;
/// Alignment the kernel requires of the ring memory.
const RING_ALIGN: usize = 4096;

/// Why a ring could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecvRingError {
    #[error("{entries} ring entries: expected a power of two from 1 to {RECV_RING_ENTRIES_MAX}")]
    Entries { entries: u16 },
    #[error("{bytes}-byte ring buffers: expected 1 to {RECV_RING_BUFFER_BYTES_MAX}")]
    BufferBytes { bytes: usize },
    #[error("cannot allocate a ring of {bytes} bytes")]
    Alloc { bytes: usize },
}

/// Provided buffers for multishot receives.
pub struct RecvRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    bufs: Box<[u8]>,
    buf_bytes: usize,
    entries: u16,
    /// Our copy of the tail (entries handed to the kernel, wrapping).
    tail: u16,
    /// Buffers the caller holds now, by id (for double-return checks).
    held: Box<[bool]>,
}

impl RecvRing {
    /// Allocates `entries` buffers of `buf_bytes` and a ring listing all of
    /// them (not registered yet: the event loop does that).
    pub fn new(entries: u16, buf_bytes: usize) -> Result<RecvRing, RecvRingError> {
        if entries == 0 || !entries.is_power_of_two() || entries > RECV_RING_ENTRIES_MAX {
            return Err(RecvRingError::Entries { entries });
        }
        if buf_bytes == 0 || buf_bytes > RECV_RING_BUFFER_BYTES_MAX {
            return Err(RecvRingError::BufferBytes { bytes: buf_bytes });
        }
        let ring_bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let ring_layout = Layout::from_size_align(ring_bytes, RING_ALIGN)
            .map_err(|_| RecvRingError::Alloc { bytes: ring_bytes })?;
        // SAFETY: the layout has a non-zero size; zeroed memory is a valid
        // array of ring entries (plain integers).
        let ring = unsafe { alloc::alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        if ring.is_null() {
            return Err(RecvRingError::Alloc { bytes: ring_bytes });
        }
        let mut r = RecvRing {
            ring,
            ring_layout,
            bufs: vec![0u8; usize::from(entries) * buf_bytes].into_boxed_slice(),
            buf_bytes,
            entries,
            tail: 0,
            held: vec![true; usize::from(entries)].into_boxed_slice(),
        };
        for bid in 0..entries {
            r.give_back(bid);
        }
        Ok(r)
    }

    /// The ring's address, for registration.
    pub fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    pub fn buffer_bytes(&self) -> usize {
        self.buf_bytes
    }

    /// The first `len` bytes of buffer `bid`, which a completion handed to
    /// the caller.
    pub fn get(&self, bid: u16, len: usize) -> Option<&[u8]> {
        if !*self.held.get(usize::from(bid))? || len > self.buf_bytes {
            return None;
        }
        let start = usize::from(bid) * self.buf_bytes;
        self.bufs.get(start..start + len)
    }

    /// A completion handed buffer `bid` to the caller.
    pub fn taken(&mut self, bid: u16) {
        if let Some(h) = self.held.get_mut(usize::from(bid)) {
            *h = true;
        }
    }

    /// Gives buffer `bid` back to the kernel. Returns false (and does
    /// nothing) for a bad id or a buffer the kernel has already.
    pub fn give_back(&mut self, bid: u16) -> bool {
        let Some(h) = self.held.get_mut(usize::from(bid)) else {
            return false;
        };
        if !*h {
            return false;
        }
        *h = false;
        let mask = self.entries - 1;
        let slot = usize::from(self.tail & mask);
        let addr = self.bufs.as_ptr() as u64 + (usize::from(bid) * self.buf_bytes) as u64;
        // SAFETY: `slot` < entries, inside the ring allocation; the kernel
        // reads an entry only once the tail published below covers it.
        unsafe {
            let entry = &mut *self.ring.add(slot);
            entry.set_addr(addr);
            entry.set_len(self.buf_bytes as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field lives in the first entry of the ring, which
        // is valid and aligned for u16; the release store publishes the
        // entry written above before the new tail.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
        true
    }
}

impl Drop for RecvRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the event loop
        // unregisters the ring (or leaks this value) before it is dropped.
        unsafe { alloc::dealloc(self.ring.cast(), self.ring_layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(
            RecvRing::new(3, 16).err(),
            Some(RecvRingError::Entries { entries: 3 })
        );
        assert_eq!(
            RecvRing::new(0, 16).err(),
            Some(RecvRingError::Entries { entries: 0 })
        );
        assert_eq!(
            RecvRing::new(4, 0).err(),
            Some(RecvRingError::BufferBytes { bytes: 0 })
        );
        assert!(RecvRing::new(4, RECV_RING_BUFFER_BYTES_MAX + 1).is_err());
    }

    #[test]
    fn buffers_start_with_the_kernel_and_come_back_once() {
        let mut r = RecvRing::new(4, 64).unwrap();
        assert_eq!(r.tail, 4);
        assert!(r.get(0, 10).is_none(), "the kernel holds it");
        assert!(!r.give_back(0), "already given");
        r.taken(2);
        assert_eq!(r.get(2, 64).map(<[u8]>::len), Some(64));
        assert!(r.get(2, 65).is_none());
        assert!(r.give_back(2));
        assert!(!r.give_back(2));
        assert!(!r.give_back(9));
        assert_eq!(r.tail, 5);
    }
}
