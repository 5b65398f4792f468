//! Reading OTLP protobuf bytes in place, without building messages.
//!
//! A collector that forwards spans, and a consumer that needs a few fields
//! of each, spend most of their time allocating the strings of attributes
//! they never look at. This module walks the encoded bytes instead: it
//! yields each field as a slice of the input, and [`otlp::validate`] checks
//! a whole message against the OTLP schema exactly as strictly as decoding
//! it with `prost` would (wire types of known fields, UTF-8 of strings,
//! nesting), so bytes passed on verbatim are bytes every consumer can
//! decode.

pub mod otlp;

/// Why bytes are not a valid protobuf message of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended inside a field.
    #[error("truncated message")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("invalid varint")]
    Varint,
    /// Field number 0, or a wire type that does not exist.
    #[error("invalid tag {0}")]
    Tag(u64),
    /// A known field with a wire type its declaration does not allow.
    #[error("{message}.{field}: invalid wire type {wire_type}")]
    WireType {
        message: &'static str,
        field: &'static str,
        wire_type: u8,
    },
    /// A `string` field that is not UTF-8.
    #[error("{message}.{field}: invalid UTF-8")]
    Utf8 {
        message: &'static str,
        field: &'static str,
    },
    /// Messages nested deeper than decoders allow.
    #[error("recursion limit reached")]
    TooDeep,
    /// A group (wire types 3 and 4) that does not close.
    #[error("unterminated group")]
    Group,
}

/// The payload of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: the bytes inside the length prefix.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire types 3 and 4 (deprecated groups), skipped as a whole.
    Group,
}

impl Value<'_> {
    /// The wire type number, for messages.
    pub fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Group => 3,
            Value::Fixed32(_) => 5,
        }
    }
}

/// One field of a message: its number, payload, and where its encoding
/// (tag included) sits in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field number.
    pub number: u32,
    /// The payload.
    pub value: Value<'a>,
    /// The whole field as encoded: tag, length prefix and payload.
    pub raw: &'a [u8],
}

/// The fields of one encoded message, in the order they are written.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Fields<'a> {
    /// Iterates over the fields of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    #[inline]
    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        // Most tags, lengths and small numbers take one byte: that case is
        // inlined into every reader, the rest is a call.
        if let Some(&byte) = self.buf.get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated);
            };
            self.pos += 1;
            // The tenth byte holds the 64th bit only; more is an overflow.
            if shift == 9 && byte > 1 {
                return Err(WireError::Varint);
            }
            value |= u64::from(byte & 0x7f) << (7 * shift);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::Varint)
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(len).ok_or(WireError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn tag(&mut self) -> Result<(u32, u8), WireError> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::Tag(tag));
        }
        Ok((number as u32, (tag & 7) as u8))
    }

    /// Skips a group whose start tag was just read, up to its end tag.
    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), WireError> {
        if depth == 0 {
            return Err(WireError::TooDeep);
        }
        loop {
            if self.pos >= self.buf.len() {
                return Err(WireError::Group);
            }
            let (inner, wire_type) = self.tag()?;
            match wire_type {
                4 if inner == number => return Ok(()),
                4 => return Err(WireError::Group),
                3 => self.skip_group(inner, depth - 1)?,
                _ => {
                    self.payload(wire_type)?;
                }
            }
        }
    }

    /// The next field's number and payload, `Ok(None)` at the end, for a
    /// reader that checks each field itself: no framing of the raw field
    /// and no item per field as the iterator gives. A group is refused
    /// with [`WireError::Group`] (decoders skip them; such a reader can
    /// leave the message to one).
    #[inline]
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if let Some(field) = self.short_field() {
            return Ok(Some(field));
        }
        self.next_field_framed()
    }

    /// [`Fields::next_field`] for any field, through the general framing.
    fn next_field_framed(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let (number, wire_type) = self.tag()?;
        match wire_type {
            3 | 4 => Err(WireError::Group),
            other => Ok(Some((number, self.payload(other)?))),
        }
    }

    /// The next field of a message [`otlp::validate`] accepted, `None` at
    /// the end: the lean reader of [`Fields::next_field`] for the many
    /// readers that only pick fields out of validated bytes. Groups (which
    /// validation allows in unknown fields) are skipped as decoders skip
    /// them; bytes that were not validated end at their first fault.
    #[inline]
    pub fn next_validated(&mut self) -> Option<(u32, Value<'a>)> {
        if let Some(field) = self.short_field() {
            return Some(field);
        }
        self.next_validated_framed()
    }

    /// The next field when it has the shape most fields of a span have: a
    /// one-byte tag and a one- or two-byte length, a one-byte value or a
    /// fixed64, read without the general framing, which costs about 50
    /// instructions a field. `None` for any other shape, and at the end,
    /// for the general framing to read or refuse: every field this reads is
    /// one the framing would read the same way, so it needs no validation
    /// first.
    #[inline(always)]
    fn short_field(&mut self) -> Option<(u32, Value<'a>)> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let [tag, after @ ..] = rest else {
            return None;
        };
        if !(8..0x80).contains(tag) {
            return None;
        }
        let number = u32::from(tag >> 3);
        match (tag & 7, after) {
            (0, [value, ..]) if *value < 0x80 => {
                self.pos += 2;
                Some((number, Value::Varint(u64::from(*value))))
            }
            (1, [a, b, c, d, e, f, g, h, ..]) => {
                self.pos += 9;
                let value = u64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]);
                Some((number, Value::Fixed64(value)))
            }
            (2, [len, payload @ ..]) if *len < 0x80 => {
                let bytes = payload.get(..usize::from(*len))?;
                self.pos += 2 + usize::from(*len);
                Some((number, Value::Bytes(bytes)))
            }
            // A two-byte length: a span in its scope, a long attribute.
            (2, [low, high, payload @ ..]) if *high < 0x80 => {
                let len = usize::from(low & 0x7f) | usize::from(*high) << 7;
                let bytes = payload.get(..len)?;
                self.pos += 3 + len;
                Some((number, Value::Bytes(bytes)))
            }
            _ => None,
        }
    }

    /// Moves past the fields that follow back to back under the one-byte
    /// `tag` of a length-delimited field, each with a one-byte length: the
    /// shape in which exporters write a span's attributes and events. A
    /// reader that skips them spares each the general reading of a field;
    /// a span's attributes were half of `otlp::span_head`'s work. Stops at
    /// any other field and at a length the bytes do not hold, which the
    /// general reading then reads or refuses.
    #[inline(always)]
    pub fn skip_run(&mut self, tag: u8) {
        while let [next, len @ 0..0x80, rest @ ..] = self.buf.get(self.pos..).unwrap_or_default()
            && *next == tag
            && usize::from(*len) <= rest.len()
        {
            self.pos += 2 + usize::from(*len);
        }
    }

    /// [`Fields::next_validated`] for any field, through the general framing.
    fn next_validated_framed(&mut self) -> Option<(u32, Value<'a>)> {
        loop {
            if self.pos >= self.buf.len() {
                return None;
            }
            let Ok((number, wire_type)) = self.tag() else {
                return self.stop();
            };
            if wire_type == 3 {
                if self.skip_group(number, otlp::RECURSION_LIMIT).is_err() {
                    return self.stop();
                }
                continue;
            }
            return match self.payload(wire_type) {
                Ok(value) => Some((number, value)),
                Err(_) => self.stop(),
            };
        }
    }

    #[cold]
    fn stop<T>(&mut self) -> Option<T> {
        self.pos = self.buf.len();
        None
    }

    #[inline]
    fn payload(&mut self, wire_type: u8) -> Result<Value<'a>, WireError> {
        Ok(match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => {
                let bytes = self.take(8)?;
                let mut array = [0u8; 8];
                array.copy_from_slice(bytes);
                Value::Fixed64(u64::from_le_bytes(array))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let bytes = self.take(4)?;
                let mut array = [0u8; 4];
                array.copy_from_slice(bytes);
                Value::Fixed32(u32::from_le_bytes(array))
            }
            other => return Err(WireError::Tag(u64::from(other))),
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let field = (|| {
            let (number, wire_type) = self.tag()?;
            let value = match wire_type {
                3 => {
                    self.skip_group(number, otlp::RECURSION_LIMIT)?;
                    Value::Group
                }
                4 => return Err(WireError::Group),
                other => self.payload(other)?,
            };
            Ok(Field {
                number,
                value,
                raw: &self.buf[start..self.pos],
            })
        })();
        if field.is_err() {
            // Stop after the first error: the rest cannot be framed.
            self.pos = self.buf.len();
        }
        Some(field)
    }
}

/// Bytes a varint of `value` takes.
pub fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `value` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes a length-delimited field of `len` payload bytes takes, for field
/// numbers below 16 (a one-byte tag).
pub fn len_field_size(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Appends the tag and length prefix of a length-delimited field whose
/// number is below 16; the payload follows.
pub fn put_len_prefix(out: &mut Vec<u8>, number: u32, len: usize) {
    debug_assert!(number < 16, "one-byte tags only");
    out.push(((number << 3) | 2) as u8);
    put_varint(out, len as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_run_stops_at_another_field_and_at_a_long_or_cut_length() {
        // Two short fields under tag 0x4a, then field 1.
        let bytes = [0x4a, 0x01, 0xaa, 0x4a, 0x00, 0x08, 0x01];
        let mut fields = Fields::new(&bytes);
        fields.skip_run(0x4a);
        assert_eq!(fields.pos, 5);
        assert_eq!(fields.next_validated(), Some((1, Value::Varint(1))));
        // A field under the tag with a two-byte length is left to the
        // general reading.
        let long = [[0x4a, 0x01, 0xaa, 0x4a, 0x80, 0x01].as_slice(), &[0; 128]].concat();
        let mut fields = Fields::new(&long);
        fields.skip_run(0x4a);
        assert_eq!(fields.pos, 3);
        assert!(matches!(fields.next_validated(), Some((9, Value::Bytes(b))) if b.len() == 128));
        // A length past the end stops the run where the bytes end short.
        let cut = [0x4a, 0x01, 0xaa, 0x4a, 0x05, 0xaa];
        let mut fields = Fields::new(&cut);
        fields.skip_run(0x4a);
        assert_eq!(fields.pos, 3);
        assert_eq!(fields.next_validated(), None);
        // Another tag first: nothing skipped.
        let mut fields = Fields::new(&bytes[5..]);
        fields.skip_run(0x4a);
        assert_eq!(fields.pos, 0);
    }

    #[test]
    fn next_field_reads_what_the_iterator_reads_and_refuses_groups() {
        let mut message = Vec::new();
        put_len_prefix(&mut message, 1, 3);
        message.extend_from_slice(b"abc");
        message.extend_from_slice(&[0x10, 0x96, 0x01]); // field 2, varint 150
        message.extend_from_slice(&[0x19, 1, 0, 0, 0, 0, 0, 0, 0]); // field 3, fixed64 1
        message.extend_from_slice(&[0x25, 2, 0, 0, 0]); // field 4, fixed32 2
        message.extend_from_slice(&[0x82, 0xb5, 0x18, 0x00]); // field 50,000, empty bytes
        let expected: Vec<(u32, Value<'_>)> = Fields::new(&message)
            .map(|f| f.map(|f| (f.number, f.value)))
            .collect::<Result<_, _>>()
            .unwrap();
        let mut fields = Fields::new(&message);
        let mut read = Vec::new();
        while let Some(field) = fields.next_field().unwrap() {
            read.push(field);
        }
        assert_eq!(read, expected);
        assert_eq!(read.len(), 5);
        assert_eq!(read[1], (2, Value::Varint(150)));

        let truncated = &message[..message.len() - 2];
        let mut fields = Fields::new(truncated);
        let outcome = std::iter::from_fn(|| fields.next_field().transpose()).last();
        assert_eq!(outcome, Some(Err(WireError::Truncated)));
        // A group: field 5 start, field 1 varint, field 5 end.
        let group = [0x2b, 0x08, 0x01, 0x2c];
        assert!(Fields::new(&group).all(|f| f.is_ok()));
        assert_eq!(Fields::new(&group).next_field(), Err(WireError::Group));
    }

    #[test]
    fn next_validated_skips_groups_and_stops_at_a_fault() {
        // field 5 group holding field 1 varint 1, then field 1 varint 2,
        // then field 2 "hi".
        let bytes = [0x2b, 0x08, 0x01, 0x2c, 0x08, 0x02, 0x12, 2, b'h', b'i'];
        let mut fields = Fields::new(&bytes);
        assert_eq!(fields.next_validated(), Some((1, Value::Varint(2))));
        assert_eq!(fields.next_validated(), Some((2, Value::Bytes(b"hi"))));
        assert_eq!(fields.next_validated(), None);
        let mut truncated = Fields::new(&bytes[..8]);
        assert_eq!(truncated.next_validated(), Some((1, Value::Varint(2))));
        assert_eq!(truncated.next_validated(), None);
        assert_eq!(truncated.next_validated(), None, "stays at the end");
    }

    /// Fields of every shape the short cuts take and of shapes they leave
    /// to the framing.
    fn short_cut_sample() -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(&[0x08, 0x05]); // field 1, varint 5
        message.extend_from_slice(&[0x10, 0x96, 0x01]); // field 2, varint 150
        message.extend_from_slice(&[0x39, 1, 2, 3, 4, 5, 6, 7, 8]); // field 7, fixed64
        put_len_prefix(&mut message, 5, 3);
        message.extend_from_slice(b"abc");
        put_len_prefix(&mut message, 9, 200); // a two-byte length
        message.extend(std::iter::repeat_n(b'x', 200));
        message.extend_from_slice(&[0x25, 2, 0, 0, 0]); // field 4, fixed32 2
        message.extend_from_slice(&[0x2b, 0x08, 0x01, 0x2c]); // field 5, a group
        message.extend_from_slice(&[0x82, 0xb5, 0x18, 0x00]); // field 50,000, empty bytes
        message.extend_from_slice(&[0x7a, 0x00]); // field 15, empty bytes
        message
    }

    /// Calls `check` with every truncation of `message` and with it after
    /// each of several single-byte changes, and what was done to it.
    fn each_variant(message: &[u8], mut check: impl FnMut(&[u8], String)) {
        for end in 0..message.len() {
            check(&message[..end], format!("cut at {end}"));
        }
        let mut changed = message.to_vec();
        for at in 0..message.len() {
            for byte in [0x00, 0x01, 0x07, 0x7f, 0x80, 0xff, message[at] ^ 0x08] {
                changed[at] = byte;
                check(&changed, format!("byte {at} set to {byte:#x}"));
            }
            changed[at] = message[at];
        }
    }

    #[test]
    fn next_validateds_short_cut_reads_what_the_framing_reads() {
        let message = short_cut_sample();
        type Read<'a> = Vec<(u32, Value<'a>)>;
        fn both(bytes: &[u8]) -> (Read<'_>, Read<'_>) {
            let (mut short, mut framed) = (Fields::new(bytes), Fields::new(bytes));
            let short = std::iter::from_fn(|| short.next_validated())
                .take(100)
                .collect();
            let framed = std::iter::from_fn(|| framed.next_validated_framed())
                .take(100)
                .collect();
            (short, framed)
        }
        let (short, framed) = both(&message);
        assert_eq!(short, framed);
        assert_eq!(short.len(), 8, "the group skipped");
        each_variant(&message, |bytes, what| {
            let (short, framed) = both(bytes);
            assert_eq!(short, framed, "{what}");
        });
    }

    /// The same message and mutations for `next_field`, whose bytes are not
    /// validated first: its short cut must read every field as the framing
    /// does and leave every fault (truncation, groups, bad tags) to it.
    #[test]
    fn next_fields_short_cut_reads_and_refuses_what_the_framing_does() {
        let message = short_cut_sample();
        type Read<'a> = Vec<Result<(u32, Value<'a>), WireError>>;
        fn both(bytes: &[u8]) -> (Read<'_>, Read<'_>) {
            fn read<'a>(
                mut next: impl FnMut() -> Result<Option<(u32, Value<'a>)>, WireError>,
            ) -> Read<'a> {
                let mut out = Vec::new();
                while out.len() < 100 {
                    match next() {
                        Ok(Some(field)) => out.push(Ok(field)),
                        Ok(None) => break,
                        Err(error) => {
                            out.push(Err(error));
                            break;
                        }
                    }
                }
                out
            }
            let (mut short, mut framed) = (Fields::new(bytes), Fields::new(bytes));
            (
                read(|| short.next_field()),
                read(|| framed.next_field_framed()),
            )
        }
        let (short, framed) = both(&message);
        assert_eq!(short, framed);
        assert_eq!(short.len(), 7, "six fields, then the group refused");
        assert_eq!(short[6], Err(WireError::Group));
        each_variant(&message, |bytes, what| {
            let (short, framed) = both(bytes);
            assert_eq!(short, framed, "{what}");
        });
    }

    #[test]
    fn varint_lengths_match_the_encoder() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            let mut fields = Fields::new(&out);
            assert_eq!(fields.varint(), Ok(value));
        }
    }

    #[test]
    fn fields_yield_payloads_and_raw_encodings() {
        // field 1 varint 150, field 2 "hi", field 3 fixed64 7, field 4 fixed32 9
        let bytes = [
            0x08, 0x96, 0x01, 0x12, 2, b'h', b'i', 0x19, 7, 0, 0, 0, 0, 0, 0, 0, 0x25, 9, 0, 0, 0,
        ];
        let fields: Vec<Field> = Fields::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[0].value, Value::Varint(150));
        assert_eq!(fields[0].raw, &bytes[0..3]);
        assert_eq!(fields[1].value, Value::Bytes(b"hi"));
        assert_eq!(fields[1].raw, &bytes[3..7]);
        assert_eq!(fields[2].value, Value::Fixed64(7));
        assert_eq!(fields[3].value, Value::Fixed32(9));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: [(&[u8], WireError); 5] = [
            (&[0x12, 5, b'a'], WireError::Truncated),
            (&[0x00], WireError::Tag(0)),
            (&[0x0f], WireError::Tag(7)),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                WireError::Varint,
            ),
            (&[0x0b, 0x08, 0x01], WireError::Group),
        ];
        for (bytes, expected) in cases {
            let result: Result<Vec<Field>, _> = Fields::new(bytes).collect();
            assert_eq!(result, Err(expected), "{bytes:?}");
        }
    }

    #[test]
    fn groups_are_skipped_whole() {
        // field 5 start group, inner field 1 varint 1, end group 5, then field 1 varint 2
        let bytes = [0x2b, 0x08, 0x01, 0x2c, 0x08, 0x02];
        let fields: Vec<Field> = Fields::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields[0].value, Value::Group);
        assert_eq!(fields[0].raw, &bytes[0..4]);
        assert_eq!(fields[1].value, Value::Varint(2));
    }
}
