//! JSON strings written by hand into document and request bodies, with the
//! exact bytes serde_json writes. Most strings written here (index names,
//! ids, service and operation names, tag keys) need no escaping; for those
//! the text is copied as it is, without serde_json's writer machinery,
//! which was a tenth of the ingester's CPU.

/// Whether serde_json writes `text` between quotes unchanged: it escapes
/// only `"`, `\` and control characters below 0x20.
///
/// Every id, index name, tag key and tag value of every document passes
/// here, and most are shorter than twenty bytes, so short text decides the
/// cost. Text is tested eight bytes at a time as machine words, the last
/// word overlapping the one before it; text shorter than a word is padded
/// with spaces. A byte loop was about a tenth of the ingester's own
/// instructions.
pub fn is_plain(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(last) = bytes.len().checked_sub(8) else {
        let mut word = [b' '; 8];
        for (to, from) in word.iter_mut().zip(bytes) {
            *to = *from;
        }
        return !word_escapes(word);
    };
    // No early exit: text with escapes is rare, and a branch per word
    // costs every other text.
    let mut words = bytes.chunks_exact(8);
    let mut escapes = words
        .by_ref()
        .fold(false, |any, word| any | word_escapes(eight(word)));
    if !words.remainder().is_empty() {
        escapes |= word_escapes(eight(&bytes[last..]));
    }
    !escapes
}

/// The first eight bytes of `bytes`, which has at least eight.
fn eight(bytes: &[u8]) -> [u8; 8] {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    word
}

/// Whether any of eight bytes is one JSON escapes, tested on them as one
/// word: a byte below 0x20 leaves its high bit set in `x - 0x20` where it
/// was clear in `x`, and a byte equal to `"` or `\` becomes zero when
/// xored with it, which the same test with 1 finds. A borrow only starts
/// at such a byte, so a word without one never tests positive.
fn word_escapes(word: [u8; 8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let x = u64::from_le_bytes(word);
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x;
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    (below(x, 0x20) | below(quote, 1) | below(backslash, 1)) & HIGH != 0
}

/// Appends `text` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    if is_plain(text) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// The bytes [`write_str`] appends for `text`.
pub fn str_len(text: &str) -> usize {
    if is_plain(text) {
        text.len() + 2
    } else {
        let mut out = Vec::new();
        write_str(&mut out, text);
        out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ASCII byte, alone and amid text, and some non-ASCII text: the
    /// bytes and their count are serde_json's.
    #[test]
    fn writes_what_serde_json_writes() {
        let mut samples: Vec<String> = (0u8..128).map(|b| format!("a{}b", char::from(b))).collect();
        samples.extend(
            [
                "",
                "plain",
                "jaeger-span-2026-01-01",
                "é ü 中文 🙂",
                "\u{7f}",
                "\u{2028}",
            ]
            .map(String::from),
        );
        // Each escaped byte at every place of a string longer than two
        // blocks, so both the blocks and the tail meet it.
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..40 {
                let mut text = vec![b'x'; 40];
                text[at] = special;
                samples.push(String::from_utf8(text).unwrap());
            }
        }
        // Every length up to three blocks, each escaped byte at every place,
        // and a non-ASCII character at every place (its bytes are all at
        // or above 0x80 and must not be taken for escapes).
        for len in 1..50 {
            for at in 0..len {
                for special in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut text = vec![b'x'; len];
                    text[at] = special;
                    samples.push(String::from_utf8(text).unwrap());
                }
                let mut text = "x".repeat(len);
                text.insert(at, '\u{1f642}');
                samples.push(text);
            }
            samples.push("x".repeat(len));
            samples.push(" ".repeat(len));
            samples.push("~".repeat(len));
        }
        samples.push("x".repeat(48));
        for text in samples {
            let mut ours = Vec::new();
            write_str(&mut ours, &text);
            assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "{text:?}");
            assert_eq!(str_len(&text), ours.len(), "{text:?}");
        }
    }
}
