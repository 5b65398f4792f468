//! Hashing of trace and span ids for maps keyed by them: the analytics
//! job's pairing maps, the collector's grouping of a request by trace.
//!
//! The ids are chosen by whoever sends spans, so the maps keyed by them
//! must not let a sender pick ids that all land in one bucket: std's
//! SipHash guards against that, at about a tenth of the analytics job's
//! CPU for two map operations per span. Ids are fixed-size integers, so a keyed
//! folded multiply (each 64-bit word XORed into the state and multiplied
//! by a secret odd key, both halves of the 128-bit product folded) mixes
//! them in a few cycles; the keys are drawn per map from std's random
//! source, so colliding ids cannot be computed from outside the process.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A map keyed by trace or span id.
pub type IdMap<K, V> = HashMap<K, V, IdHashing>;

/// An empty [`IdMap`] with fresh keys.
pub fn id_map<K, V>() -> IdMap<K, V> {
    HashMap::with_hasher(IdHashing::new())
}

/// An empty [`IdMap`] with room for `capacity` entries.
pub fn id_map_with_capacity<K, V>(capacity: usize) -> IdMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, IdHashing::new())
}

/// Builds [`IdHasher`]s sharing one pair of secret keys.
#[derive(Debug, Clone, Copy)]
pub struct IdHashing {
    seed: u64,
    key: u64,
}

impl IdHashing {
    /// Keys from std's per-process random source.
    pub fn new() -> Self {
        let random = RandomState::new();
        IdHashing {
            seed: random.hash_one(0x5eed_u64),
            // Odd, so multiplying by it loses no bits of the low word.
            key: random.hash_one(0x6b65_u64) | 1,
        }
    }
}

impl Default for IdHashing {
    fn default() -> Self {
        IdHashing::new()
    }
}

// The hashers are called from maps in other crates, per record and per
// span; without `#[inline]` each call would cross the crate boundary.
impl BuildHasher for IdHashing {
    type Hasher = IdHasher;

    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.seed,
            key: self.key,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct IdHasher {
    state: u64,
    key: u64,
}

/// The 128-bit product of `a` and `b`, its halves XORed.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; correct for any other.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.state = fold(self.state ^ word, self.key);
    }

    #[inline]
    fn write_u128(&mut self, word: u128) {
        self.write_u64(word as u64);
        self.write_u64((word >> 64) as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // One more round, so the last word written reaches every bit.
        fold(self.state, self.key.rotate_left(32) | 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn equal_ids_hash_equal_and_maps_work() {
        let hashing = IdHashing::new();
        assert_eq!(hashing.hash_one(42u128), hashing.hash_one(42u128));
        let mut map = id_map();
        for id in 0..10_000u128 {
            map.insert(id << 64 | id, id);
        }
        for id in 0..10_000u128 {
            assert_eq!(map.get(&(id << 64 | id)), Some(&id));
        }
        assert_eq!(map.get(&1), None);
    }

    #[test]
    fn sequential_ids_spread_over_buckets() {
        // Ids that differ only in a few bits (a counter, in either half)
        // must not share low bits, which index hashbrown's buckets.
        let hashing = IdHashing::new();
        for shift in [0u32, 64] {
            let low: HashSet<u64> = (0..4096u128)
                .map(|i| hashing.hash_one(i << shift) & 0xfff)
                .collect();
            assert!(low.len() > 2000, "{} of 4096 buckets used", low.len());
        }
    }

    #[test]
    fn keys_differ_between_maps() {
        let a = IdHashing::new();
        let b = IdHashing::new();
        assert_ne!(a.hash_one(7u64), b.hash_one(7u64));
    }
}
