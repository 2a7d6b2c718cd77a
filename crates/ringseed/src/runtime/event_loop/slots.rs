//! `SlotTable`: the event loop's op slots, allocated in fixed chunks as ops
//! need them and never moved or freed while the loop lives, so the
//! pointers the kernel holds into a slot (iovecs, addresses, timespecs)
//! stay valid. A loop sized for many connections costs memory for the ops
//! it has had in flight at once, not for its limit.

/// Slots per chunk: a chunk is allocated whole when the free list is empty.
pub(super) const SLOTS_PER_CHUNK: usize = 256;

/// Slots `0..max`, of which the first `allocated()` exist.
pub(super) struct SlotTable<T> {
    chunks: Vec<Box<[T]>>,
    /// Free slots among those allocated (most recently freed last).
    free: Vec<u32>,
    max: u32,
}

impl<T> Default for SlotTable<T> {
    fn default() -> Self {
        SlotTable {
            chunks: Vec::new(),
            free: Vec::new(),
            max: 0,
        }
    }
}

impl<T> SlotTable<T> {
    /// An empty table of at most `max` slots.
    pub(super) fn new(max: u32) -> Self {
        SlotTable {
            chunks: Vec::new(),
            free: Vec::new(),
            max,
        }
    }

    /// Slots that exist (allocated chunks).
    pub(super) fn allocated(&self) -> usize {
        self.chunks.len() * SLOTS_PER_CHUNK
    }

    pub(super) fn get(&self, index: usize) -> Option<&T> {
        self.chunks
            .get(index / SLOTS_PER_CHUNK)?
            .get(index % SLOTS_PER_CHUNK)
    }

    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(index / SLOTS_PER_CHUNK)?
            .get_mut(index % SLOTS_PER_CHUNK)
    }

    /// A free slot, allocating a chunk (with `make`) when none is free and
    /// the limit allows; `None` when every slot up to the limit is taken.
    pub(super) fn take(&mut self, make: impl Fn() -> T) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        let first = self.allocated();
        if first >= self.max as usize {
            return None;
        }
        let n = SLOTS_PER_CHUNK.min(self.max as usize - first);
        let mut chunk = Vec::with_capacity(SLOTS_PER_CHUNK);
        // A short last chunk is padded (never handed out) so that every
        // chunk has the same length and indexing stays a division.
        chunk.extend((0..SLOTS_PER_CHUNK).map(|_| make()));
        self.chunks.push(chunk.into_boxed_slice());
        // Lowest index handed out first.
        self.free
            .extend((first + 1..first + n).rev().map(|i| i as u32));
        Some(first as u32)
    }

    /// Gives a slot back.
    pub(super) fn give_back(&mut self, index: u32) {
        debug_assert!((index as usize) < self.allocated());
        self.free.push(index);
    }

    /// Every allocated slot with its index.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.chunks.iter().flat_map(|c| c.iter()).enumerate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_allocated_a_chunk_at_a_time_up_to_the_limit() {
        let max = SLOTS_PER_CHUNK as u32 + 3;
        let mut t: SlotTable<u64> = SlotTable::new(max);
        assert_eq!(t.allocated(), 0);
        assert!(t.get(0).is_none());
        let mut got = Vec::new();
        while let Some(i) = t.take(|| 7) {
            got.push(i);
        }
        assert_eq!(got, (0..max).collect::<Vec<_>>());
        assert_eq!(t.allocated(), 2 * SLOTS_PER_CHUNK);
        assert_eq!(t.get(max as usize - 1), Some(&7));
        t.give_back(5);
        assert_eq!(t.take(|| 0), Some(5));
        assert_eq!(t.take(|| 0), None);
    }

    #[test]
    fn slots_never_move_as_the_table_grows() {
        let mut t: SlotTable<[u8; 64]> = SlotTable::new(4 * SLOTS_PER_CHUNK as u32);
        let first = t.take(|| [0; 64]).unwrap();
        let at = t.get(first as usize).unwrap().as_ptr();
        for _ in 0..3 * SLOTS_PER_CHUNK {
            t.take(|| [0; 64]).unwrap();
        }
        assert_eq!(t.get(first as usize).unwrap().as_ptr(), at);
        assert_eq!(t.iter().count(), 4 * SLOTS_PER_CHUNK);
    }
}
