//! The configured tag keys stored as fields, looked up once per tag.
//!
//! Every tag of every span is checked against this set, and almost none
//! match, so the lookup is on the ingester's hottest path: a `HashSet`
//! with the standard SipHash hasher spent about 6 % of the ingester's CPU
//! hashing keys it then did not find. The set is small and fixed at start,
//! so a length mask rejects most keys without reading them and a binary
//! search settles the rest.

use std::cmp::Ordering;

/// A fixed set of tag keys, ordered by length then bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagKeys {
    keys: Box<[Box<str>]>,
    /// Bit `n` set when a key of `n` bytes is present; bit 63 stands for
    /// every length from 63 up.
    lengths: u64,
}

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

fn by_length_then_bytes(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

impl TagKeys {
    /// Whether `key` is one of the set.
    pub fn contains(&self, key: &str) -> bool {
        self.lengths & length_bit(key.len()) != 0
            && self
                .keys
                .binary_search_by(|k| by_length_then_bytes(k, key))
                .is_ok()
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl<S: Into<Box<str>>> FromIterator<S> for TagKeys {
    fn from_iter<I: IntoIterator<Item = S>>(keys: I) -> Self {
        let mut keys: Vec<Box<str>> = keys.into_iter().map(Into::into).collect();
        keys.sort_by(|a, b| by_length_then_bytes(a, b));
        keys.dedup();
        let lengths = keys.iter().fold(0, |mask, k| mask | length_bit(k.len()));
        TagKeys {
            keys: keys.into_boxed_slice(),
            lengths,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_its_keys() {
        let long = "k".repeat(70);
        let keys: TagKeys = ["http.route", "n", "http.method", "", "é", "http.route"]
            .into_iter()
            .map(String::from)
            .chain([long.clone()])
            .collect();
        for present in ["http.route", "n", "http.method", "", "é", long.as_str()] {
            assert!(keys.contains(present), "{present:?}");
        }
        let longer = "k".repeat(71);
        let absent = [
            "http.routf",
            "m",
            "http.metho",
            "http.methodd",
            "N",
            "e",
            &longer,
            "k",
        ];
        for absent in absent {
            assert!(!keys.contains(absent), "{absent:?}");
        }
        assert!(!keys.is_empty());
    }

    #[test]
    fn agrees_with_a_hash_set_on_every_prefix() {
        let configured = ["otel.status_code", "http.request.method", "http.route", "a"];
        let keys: TagKeys = configured.into_iter().collect();
        let reference: std::collections::HashSet<&str> = configured.into_iter().collect();
        for key in configured {
            for end in 0..=key.len() {
                let probe = &key[..end];
                assert_eq!(keys.contains(probe), reference.contains(probe), "{probe:?}");
            }
        }
        let empty = TagKeys::default();
        assert!(empty.is_empty() && !empty.contains("") && !empty.contains("a"));
    }
}
