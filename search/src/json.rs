//! JSON strings written by hand into document and request bodies, with the
//! exact bytes serde_json writes. Most strings written here (index names,
//! ids, service and operation names, tag keys) need no escaping; for those
//! the text is copied as it is, without serde_json's writer machinery,
//! which was a tenth of the ingester's CPU.

/// Whether serde_json writes `text` between quotes unchanged: it escapes
/// only `"`, `\` and control characters below 0x20.
fn is_plain(text: &str) -> bool {
    text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
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
        for text in samples {
            let mut ours = Vec::new();
            write_str(&mut ours, &text);
            assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "{text:?}");
            assert_eq!(str_len(&text), ours.len(), "{text:?}");
        }
    }
}
