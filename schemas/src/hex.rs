//! Lower-case hex of ids, as `hex::encode` writes it, without its cost.
//!
//! Every record key and every document carries ids in hex. `hex::encode`
//! collects a string one character at a time (a capacity check, a char
//! encoding and, as the string grows, reallocations for each); these write
//! the digits from a table into a buffer on the stack and append them at
//! once. On the ingester's documents that was about a twentieth of its
//! instructions; in the collector, the key of every record.

/// The two lower-case hex digits of every byte value.
const PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0x0f]];
        byte += 1;
    }
    pairs
};

/// Calls `write` with the hex digits of `bytes`, up to 64 digits at a time.
pub fn with_digits(bytes: &[u8], mut write: impl FnMut(&[u8])) {
    let mut digits = [0u8; 64];
    for chunk in bytes.chunks(32) {
        let text = &mut digits[..chunk.len() * 2];
        for (pair, byte) in text.chunks_exact_mut(2).zip(chunk) {
            pair.copy_from_slice(&PAIRS[usize::from(*byte)]);
        }
        write(text);
    }
}

/// Appends the hex digits of `bytes` to `out`.
pub fn push(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    // The digits are ASCII, so the check cannot fail.
    with_digits(bytes, |digits| {
        out.push_str(std::str::from_utf8(digits).unwrap_or_default())
    });
}

/// The hex digits of `bytes`, in a string allocated once.
pub fn text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push(&mut out, bytes);
    out
}

/// Appends the hex digits of `bytes` to `out`.
pub fn extend(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    with_digits(bytes, |digits| out.extend_from_slice(digits));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Record keys and document ids are written in this form: a change
    /// would give a redelivered span a second document.
    #[test]
    fn writes_what_hex_encode_writes_at_every_length() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        assert_eq!(text(&bytes), hex::encode(&bytes));
        // Every length around the 32-byte chunks.
        for len in 0..70 {
            let part = &bytes[200 - len..200];
            assert_eq!(text(part), hex::encode(part), "{len} bytes");
            let mut out = b"x".to_vec();
            extend(&mut out, part);
            assert_eq!(
                out,
                [b"x".as_slice(), hex::encode(part).as_bytes()].concat()
            );
            let mut s = String::from("y");
            push(&mut s, part);
            assert_eq!(s, format!("y{}", hex::encode(part)));
        }
    }
}
