//! The source hash that ends a span document's id, computed four documents
//! at a time.
//!
//! A span document's id ends in FNV-1a of its source, so a replayed record
//! (also one replayed by a newer version) gets the id it was stored under.
//! FNV-1a is byte-serial: each step waits for the multiply before it, so
//! one source of about a kilobyte kept a core busy for about a microsecond,
//! an eighth of the ingester's CPU, while the multiplier sat mostly idle.
//! Four independent sources hashed in lockstep fill that idle time and
//! give the same values.

use super::HashText;
use spanway_search::document::{Document, DocumentKind};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// Hex digits of the hash at the end of a span document's id.
pub(super) const HASH_DIGITS: usize = 16;

/// FNV-1a, 64 bit, carried on from `hash` over `bytes`.
pub(super) fn fnv1a64_from(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// FNV-1a, 64 bit, of the concatenated `parts`: what Jaeger uses for
/// service document ids.
pub(super) fn fnv1a64(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .fold(OFFSET, |hash, part| fnv1a64_from(hash, part))
}

/// FNV-1a of four inputs: lockstep over their common length, then each
/// tail alone.
fn fnv1a64_four(inputs: [&[u8]; 4]) -> [u64; 4] {
    let common = inputs.iter().map(|s| s.len()).min().unwrap_or(0);
    let [a, b, c, d] = inputs.map(|s| s.split_at(common).0);
    let mut h = [OFFSET; 4];
    for (((&a, &b), &c), &d) in a.iter().zip(b).zip(c).zip(d) {
        h[0] = (h[0] ^ u64::from(a)).wrapping_mul(PRIME);
        h[1] = (h[1] ^ u64::from(b)).wrapping_mul(PRIME);
        h[2] = (h[2] ^ u64::from(c)).wrapping_mul(PRIME);
        h[3] = (h[3] ^ u64::from(d)).wrapping_mul(PRIME);
    }
    for (hash, input) in h.iter_mut().zip(inputs) {
        *hash = fnv1a64_from(*hash, input.split_at(common).1);
    }
    h
}

/// Characters of the hash at the end of a time-led id (8 bytes in
/// base64url without padding).
pub(super) const BASE64_HASH_CHARS: usize = 11;

/// `bytes` in base64url without padding, after what `out` holds.
pub(super) fn push_base64url(out: &mut String, bytes: &[u8]) {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Ends `doc`'s id with `hash` written as `text` says, replacing what
/// stood in its place.
fn write_hash(doc: &mut Document, hash: u64, text: HashText) {
    let width = match text {
        HashText::Hex => HASH_DIGITS,
        HashText::Base64 => BASE64_HASH_CHARS,
    };
    let keep = doc.id.len().saturating_sub(width);
    doc.id.truncate(keep);
    match text {
        HashText::Hex => super::push_hex(&mut doc.id, &hash.to_be_bytes()),
        HashText::Base64 => push_base64url(&mut doc.id, &hash.to_be_bytes()),
    }
}

/// A document whose id ends in the hash, and the bytes that hash covers.
trait Sealable {
    fn is_span(&self) -> bool;
    fn hashed(&self) -> &[u8];
    fn hash_text(&self) -> HashText;
    fn document(&mut self) -> &mut Document;
}

impl Sealable for Document {
    fn is_span(&self) -> bool {
        self.kind == DocumentKind::Span
    }

    fn hashed(&self) -> &[u8] {
        &self.source
    }

    fn hash_text(&self) -> HashText {
        HashText::Hex
    }

    fn document(&mut self) -> &mut Document {
        self
    }
}

impl Sealable for super::Unsealed {
    fn is_span(&self) -> bool {
        self.document.kind == DocumentKind::Span
    }

    fn hashed(&self) -> &[u8] {
        super::Unsealed::hashed(self)
    }

    fn hash_text(&self) -> HashText {
        super::Unsealed::hash_text(self)
    }

    fn document(&mut self) -> &mut Document {
        &mut self.document
    }
}

/// Completes the ids of span documents whose source is what their hash
/// covers; other kinds are left alone. Sealing twice gives the same ids, as
/// the hash covers the source, not the id.
pub fn seal_span_ids<'a>(docs: impl IntoIterator<Item = &'a mut Document>) {
    seal(docs);
}

/// Completes the ids of documents built by [`super::span_document_unsealed`].
pub fn seal_unsealed<'a>(docs: impl IntoIterator<Item = &'a mut super::Unsealed>) {
    seal(docs);
}

fn seal<'a, T: Sealable + 'a>(docs: impl IntoIterator<Item = &'a mut T>) {
    let mut spans = docs.into_iter().filter(|doc| doc.is_span());
    loop {
        match std::array::from_fn::<_, 4, _>(|_| spans.next()) {
            [Some(a), Some(b), Some(c), Some(d)] => {
                let hashes = fnv1a64_four([a.hashed(), b.hashed(), c.hashed(), d.hashed()]);
                for (doc, hash) in [a, b, c, d].into_iter().zip(hashes) {
                    let text = doc.hash_text();
                    write_hash(doc.document(), hash, text);
                }
            }
            rest => {
                for doc in rest.into_iter().flatten() {
                    let hash = fnv1a64_from(OFFSET, doc.hashed());
                    let text = doc.hash_text();
                    write_hash(doc.document(), hash, text);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_at_a_time_gives_the_serial_values() {
        // Known FNV-1a 64 values.
        assert_eq!(fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
        let text: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        for lengths in [
            [0, 0, 0, 0],
            [300, 300, 300, 300],
            [5, 300, 0, 77],
            [299, 1, 300, 150],
        ] {
            let inputs = lengths.map(|n| &text[..n]);
            let serial = inputs.map(|s| fnv1a64(&[s]));
            assert_eq!(fnv1a64_four(inputs), serial, "{lengths:?}");
        }
    }

    fn doc(kind: DocumentKind, source: &[u8]) -> Document {
        Document {
            kind,
            index: "i".into(),
            id: format!("t_s_{}", "0".repeat(HASH_DIGITS)),
            source: source.to_vec(),
        }
    }

    #[test]
    fn seals_every_span_document_whatever_the_count() {
        for count in 0..11 {
            let mut docs: Vec<Document> = (0..count)
                .map(|i| doc(DocumentKind::Span, &vec![b'x'; 40 + i * 13]))
                .collect();
            docs.push(doc(DocumentKind::Service, b"{}"));
            seal_span_ids(docs.iter_mut());
            for d in &docs[..count] {
                assert_eq!(d.id, format!("t_s_{:016x}", fnv1a64(&[&d.source])));
            }
            assert_eq!(docs[count].id, format!("t_s_{}", "0".repeat(HASH_DIGITS)));
            let sealed = docs.clone();
            seal_span_ids(docs.iter_mut());
            assert_eq!(docs, sealed, "sealing again changes nothing");
        }
    }
}
