//! `Slab`: values named by a slot and the slot's generation, so a name
//! outlives its value safely: once the value is removed, the old name finds
//! nothing, even after the slot is reused.
//!
//! Keys are the caller's own types ([`SlabKey`]): a torrent's id, a
//! connection's id. A slab either hands out keys ([`Slab::insert`]) or files
//! values under keys made elsewhere ([`Slab::insert_at`]: a shard's table of
//! the torrents the session named); one slab uses one way or the other,
//! never both. Every slab has a most-values limit;
//! inserting past it is an error, never growth without bound.

use thiserror::Error;

/// A key naming a slab entry: a slot index and the slot's generation.
pub trait SlabKey: Copy + Eq {
    fn from_parts(slot: u32, generation: u32) -> Self;
    fn slot(&self) -> u32;
    fn generation(&self) -> u32;
}

/// Why a value was not stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SlabError {
    #[error("{len} entries held already, the most allowed")]
    Full { len: usize },
    #[error("slot {slot} is past the most allowed, {max}")]
    SlotOutOfRange { slot: u32, max: usize },
    #[error("slot {slot} is taken")]
    SlotTaken { slot: u32 },
}

#[derive(Debug, Clone)]
struct Entry<T> {
    generation: u32,
    value: T,
}

/// Values named by `K`, at most `max` of them.
#[derive(Debug, Clone)]
pub struct Slab<K, T> {
    entries: Vec<Option<Entry<T>>>,
    /// The generation last given out per slot (kept after removal, so the
    /// next value in the slot gets a new one).
    generations: Vec<u32>,
    free: Vec<u32>,
    len: usize,
    max: usize,
    _key: std::marker::PhantomData<K>,
}

impl<K: SlabKey, T> Slab<K, T> {
    /// An empty slab holding at most `max` values (at most `u32::MAX`).
    pub fn new(max: usize) -> Self {
        Self {
            entries: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            len: 0,
            max: max.min(u32::MAX as usize),
            _key: std::marker::PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` in a free slot under a new generation.
    pub fn insert(&mut self, value: T) -> Result<K, SlabError> {
        if self.len >= self.max {
            return Err(SlabError::Full { len: self.len });
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(None);
                self.generations.push(0);
                (self.entries.len() - 1) as u32
            }
        };
        let i = slot as usize;
        let generation = self.generations[i].wrapping_add(1);
        self.generations[i] = generation;
        debug_assert!(self.entries[i].is_none(), "a free slot holds a value");
        self.entries[i] = Some(Entry { generation, value });
        self.len += 1;
        Ok(K::from_parts(slot, generation))
    }

    /// Stores `value` under `key`, made elsewhere; its slot must be free.
    /// Slots are made up to the key's (the table is as long as the highest
    /// slot used); use this only where the keys' slots are dense.
    pub fn insert_at(&mut self, key: K, value: T) -> Result<(), SlabError> {
        let slot = key.slot();
        let i = slot as usize;
        if i >= self.max {
            return Err(SlabError::SlotOutOfRange {
                slot,
                max: self.max,
            });
        }
        if self.len >= self.max {
            return Err(SlabError::Full { len: self.len });
        }
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, || None);
            self.generations.resize(i + 1, 0);
        }
        if self.entries[i].is_some() {
            return Err(SlabError::SlotTaken { slot });
        }
        self.generations[i] = key.generation();
        self.entries[i] = Some(Entry {
            generation: key.generation(),
            value,
        });
        self.len += 1;
        Ok(())
    }

    pub fn get(&self, key: K) -> Option<&T> {
        match self.entries.get(key.slot() as usize)? {
            Some(e) if e.generation == key.generation() => Some(&e.value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: K) -> Option<&mut T> {
        match self.entries.get_mut(key.slot() as usize)? {
            Some(e) if e.generation == key.generation() => Some(&mut e.value),
            _ => None,
        }
    }

    pub fn contains(&self, key: K) -> bool {
        self.get(key).is_some()
    }

    /// Takes the value out; its key names nothing from now on.
    pub fn remove(&mut self, key: K) -> Option<T> {
        let i = key.slot() as usize;
        let slot = self.entries.get_mut(i)?;
        if slot.as_ref().map(|e| e.generation) != Some(key.generation()) {
            return None;
        }
        let e = slot.take()?;
        self.free.push(key.slot());
        self.len -= 1;
        Some(e.value)
    }

    /// The keys of every value, in slot order.
    pub fn keys(&self) -> Vec<K> {
        self.iter().map(|(k, _)| k).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (K, &T)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            e.as_ref()
                .map(|e| (K::from_parts(i as u32, e.generation), &e.value))
        })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (K, &mut T)> + '_ {
        self.entries.iter_mut().enumerate().filter_map(|(i, e)| {
            e.as_mut()
                .map(|e| (K::from_parts(i as u32, e.generation), &mut e.value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Id(u32, u32);

    impl SlabKey for Id {
        fn from_parts(slot: u32, generation: u32) -> Self {
            Id(slot, generation)
        }
        fn slot(&self) -> u32 {
            self.0
        }
        fn generation(&self) -> u32 {
            self.1
        }
    }

    #[test]
    fn a_removed_key_finds_nothing_even_when_its_slot_is_reused() {
        let mut s: Slab<Id, &str> = Slab::new(10);
        let a = s.insert("a").unwrap();
        let b = s.insert("b").unwrap();
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.get(a), None);
        let c = s.insert("c").unwrap();
        assert_eq!(c.slot(), a.slot());
        assert_ne!(c.generation(), a.generation());
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!((s.get(b), s.get(c)), (Some(&"b"), Some(&"c")));
        assert_eq!(s.len(), 2);
        assert_eq!(s.keys(), vec![c, b]);
    }

    #[test]
    fn the_limit_holds() {
        let mut s: Slab<Id, u8> = Slab::new(2);
        s.insert(1).unwrap();
        let k = s.insert(2).unwrap();
        assert_eq!(s.insert(3), Err(SlabError::Full { len: 2 }));
        s.remove(k);
        assert!(s.insert(3).is_ok());
    }

    #[test]
    fn values_filed_under_outside_keys() {
        let mut s: Slab<Id, u8> = Slab::new(8);
        s.insert_at(Id(5, 3), 1).unwrap();
        assert_eq!(s.get(Id(5, 3)), Some(&1));
        assert_eq!(s.get(Id(5, 2)), None);
        assert_eq!(s.get(Id(4, 0)), None);
        assert_eq!(
            s.insert_at(Id(5, 4), 2),
            Err(SlabError::SlotTaken { slot: 5 })
        );
        assert_eq!(
            s.insert_at(Id(8, 1), 2),
            Err(SlabError::SlotOutOfRange { slot: 8, max: 8 })
        );
        assert_eq!(s.remove(Id(5, 3)), Some(1));
        s.insert_at(Id(5, 4), 2).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(Id(5, 4), &2)]);
        for (_, v) in s.iter_mut() {
            *v += 1;
        }
        assert_eq!(s.get(Id(5, 4)), Some(&3));
    }
}
