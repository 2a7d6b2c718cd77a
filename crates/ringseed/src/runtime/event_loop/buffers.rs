//! The event loop's fixed pool of I/O buffers: `buffers` buffers of
//! `buffer_bytes` bytes each, allocated once when the loop is built and never
//! grown.
//!
//! Every buffer is in one of three states, and the pool checks each move:
//! `Free` (in the pool), `Held` (the caller owns it and may read and write it)
//! and `InKernel` (an op in flight owns it; nobody may touch it, not even the
//! caller). Only the event loop moves a buffer into or out of `InKernel`: when
//! it submits an op, and when it reaps that op's completion (which hands the
//! buffer back to the caller as `Held`). Releasing a buffer that is not `Held`
//! is a programming error: it is refused with an error (and trips a
//! `debug_assert!` in debug builds).

/// Index of one buffer in a [`BufferPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferId(pub(crate) u32);

impl BufferId {
    /// The buffer's index in its pool.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where one buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferState {
    /// In the pool, free to acquire.
    Free,
    /// Owned by the caller.
    Held,
    /// Owned by an op in flight: the kernel may read or write it.
    InKernel,
}

/// A buffer was used in a state that does not allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BufferError {
    #[error("buffer {index} does not exist: the pool has {buffers} buffers")]
    Unknown { index: usize, buffers: usize },
    #[error("buffer {index} is {found:?}, expected {expected:?}")]
    State {
        index: usize,
        expected: BufferState,
        found: BufferState,
    },
}

/// N buffers of S bytes, allocated once.
pub struct BufferPool {
    bytes: Box<[u8]>,
    buffer_bytes: usize,
    states: Box<[BufferState]>,
    free: Vec<u32>,
}

impl BufferPool {
    /// Allocates `buffers` zeroed buffers of `buffer_bytes` bytes. The caller
    /// (the event loop) has checked both against its limits.
    pub(crate) fn new(buffers: u32, buffer_bytes: usize) -> Self {
        let count = buffers as usize;
        Self {
            bytes: vec![0u8; count.saturating_mul(buffer_bytes)].into_boxed_slice(),
            buffer_bytes,
            states: vec![BufferState::Free; count].into_boxed_slice(),
            // Popped from the end: buffer 0 goes out first.
            free: (0..buffers).rev().collect(),
        }
    }

    /// Bytes in each buffer.
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Buffers in the pool, whatever their state.
    pub fn capacity(&self) -> usize {
        self.states.len()
    }

    /// Buffers free to acquire now.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Takes a free buffer; `None` when all are held or in flight.
    pub fn acquire(&mut self) -> Option<BufferId> {
        let index = self.free.pop()?;
        if let Some(state) = self.states.get_mut(index as usize) {
            *state = BufferState::Held;
        }
        Some(BufferId(index))
    }

    /// Gives a held buffer back to the pool. A buffer that is free already
    /// (a double release) or still owned by an op in flight is refused.
    pub fn release(&mut self, id: BufferId) -> Result<(), BufferError> {
        let result = self.transition(id, BufferState::Held, BufferState::Free);
        debug_assert!(result.is_ok(), "buffer release refused: {result:?}");
        result?;
        self.free.push(id.0);
        Ok(())
    }

    /// The state of a buffer.
    pub fn state(&self, id: BufferId) -> Result<BufferState, BufferError> {
        self.states
            .get(id.index())
            .copied()
            .ok_or(BufferError::Unknown {
                index: id.index(),
                buffers: self.states.len(),
            })
    }

    /// The bytes of a held buffer; `None` when it is free, in flight or unknown.
    pub fn get(&self, id: BufferId) -> Option<&[u8]> {
        if self.state(id).ok()? != BufferState::Held {
            return None;
        }
        let start = id.index().checked_mul(self.buffer_bytes)?;
        self.bytes.get(start..start.checked_add(self.buffer_bytes)?)
    }

    /// The bytes of a held buffer, to fill; `None` when it is free, in flight
    /// or unknown.
    pub fn get_mut(&mut self, id: BufferId) -> Option<&mut [u8]> {
        if self.state(id).ok()? != BufferState::Held {
            return None;
        }
        let start = id.index().checked_mul(self.buffer_bytes)?;
        let end = start.checked_add(self.buffer_bytes)?;
        self.bytes.get_mut(start..end)
    }

    /// Hands a held buffer to an op: returns the address the kernel may use
    /// until the op completes. The pool memory is never moved or freed while
    /// a buffer is `InKernel` (see the event loop's `Drop`).
    pub(crate) fn lend(&mut self, id: BufferId) -> Result<*mut u8, BufferError> {
        self.transition(id, BufferState::Held, BufferState::InKernel)?;
        let start = id.index() * self.buffer_bytes;
        Ok(self.bytes.as_mut_ptr().wrapping_add(start))
    }

    /// The whole pool's memory: its address and length (for registering it
    /// with the ring as one fixed buffer).
    pub(crate) fn region(&mut self) -> (*mut u8, usize) {
        (self.bytes.as_mut_ptr(), self.bytes.len())
    }

    /// Takes a buffer back from an op whose completion was reaped (or that
    /// never reached the kernel).
    pub(crate) fn take_back(&mut self, id: BufferId) -> Result<(), BufferError> {
        self.transition(id, BufferState::InKernel, BufferState::Held)
    }

    fn transition(
        &mut self,
        id: BufferId,
        expected: BufferState,
        next: BufferState,
    ) -> Result<(), BufferError> {
        let buffers = self.states.len();
        let state = self
            .states
            .get_mut(id.index())
            .ok_or(BufferError::Unknown {
                index: id.index(),
                buffers,
            })?;
        if *state != expected {
            return Err(BufferError::State {
                index: id.index(),
                expected,
                found: *state,
            });
        }
        *state = next;
        Ok(())
    }
}
