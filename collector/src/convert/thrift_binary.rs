//! A reader for Thrift's binary protocol (`TBinaryProtocol`), just enough to
//! decode the structs a client serialises without a message envelope, as
//! Jaeger clients post a `Batch`.
//!
//! Wire format: a struct is a sequence of fields, each a type byte and a
//! big-endian `i16` field id followed by the value, ended by a type byte of
//! 0 (STOP). Integers are big-endian two's complement, doubles IEEE 754
//! big-endian, strings and binaries an `i32` length then the bytes, lists
//! and sets an element-type byte and an `i32` count, maps two type bytes and
//! an `i32` count.
//!
//! The input comes from the network, so nothing in it is trusted: every
//! length and count is checked against the bytes that remain before anything
//! is allocated (an element takes at least one byte, so a count larger than
//! the rest of the body is a lie), and skipping unknown fields recurses at
//! most [`MAX_DEPTH`] levels, so a hostile body can cost neither memory nor
//! stack beyond its own size.

/// Deepest nesting of structs and containers accepted. Jaeger's `Batch` is
/// four levels deep (batch → span → log → tag); anything far deeper is an
/// attack or garbage.
pub const MAX_DEPTH: usize = 32;

/// Thrift's wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// One byte, 0 or 1.
    Bool,
    /// `i8`.
    Byte,
    /// IEEE 754 double.
    Double,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// A string or binary: `i32` length, then bytes.
    Binary,
    /// A struct: fields up to STOP.
    Struct,
    /// A map: key type, value type, `i32` count, then pairs.
    Map,
    /// A set: element type, `i32` count, then elements.
    Set,
    /// A list: element type, `i32` count, then elements.
    List,
    /// 16 bytes (Thrift 0.19 and later).
    Uuid,
}

impl WireType {
    fn from_byte(byte: u8) -> Result<WireType, ThriftError> {
        Ok(match byte {
            2 => WireType::Bool,
            3 => WireType::Byte,
            4 => WireType::Double,
            6 => WireType::I16,
            8 => WireType::I32,
            10 => WireType::I64,
            11 => WireType::Binary,
            12 => WireType::Struct,
            13 => WireType::Map,
            14 => WireType::Set,
            15 => WireType::List,
            16 => WireType::Uuid,
            other => return Err(ThriftError::UnknownType(other)),
        })
    }

    /// The fewest bytes a value of this type takes, to bound counts.
    fn min_size(self) -> usize {
        match self {
            WireType::Bool | WireType::Byte | WireType::Struct => 1,
            WireType::I16 => 2,
            WireType::I32 | WireType::Binary => 4,
            WireType::Double | WireType::I64 => 8,
            WireType::Map => 6,
            WireType::Set | WireType::List => 5,
            WireType::Uuid => 16,
        }
    }

    /// The name Thrift IDL uses, for messages.
    pub fn name(self) -> &'static str {
        match self {
            WireType::Bool => "bool",
            WireType::Byte => "byte",
            WireType::Double => "double",
            WireType::I16 => "i16",
            WireType::I32 => "i32",
            WireType::I64 => "i64",
            WireType::Binary => "string",
            WireType::Struct => "struct",
            WireType::Map => "map",
            WireType::Set => "set",
            WireType::List => "list",
            WireType::Uuid => "uuid",
        }
    }
}

/// Why bytes are not a valid Thrift value. The caller adds the field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThriftError {
    /// The body ended inside a value.
    #[error("truncated: needed {needed} more bytes, {remaining} left")]
    Truncated { needed: usize, remaining: usize },
    /// A type byte that is not one of Thrift's types.
    #[error("unknown thrift type {0}")]
    UnknownType(u8),
    /// A negative length or count.
    #[error("negative length {0}")]
    NegativeLength(i32),
    /// A length or count that the rest of the body cannot hold.
    #[error("length {length} cannot fit in the {remaining} bytes left")]
    TooLong { length: usize, remaining: usize },
    /// Containers or structs nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A known field with another wire type than the IDL declares.
    #[error("expected {expected}, got {got}")]
    WrongType {
        expected: &'static str,
        got: &'static str,
    },
    /// A list whose elements are not of the declared type.
    #[error("expected a list of {expected}, got a list of {got}")]
    WrongElementType {
        expected: &'static str,
        got: &'static str,
    },
    /// A required field that is absent.
    #[error("missing (required)")]
    Missing,
    /// A string that is not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// A boolean byte other than 0 or 1.
    #[error("invalid bool byte {0}")]
    BadBool(u8),
    /// Bytes left after the top-level struct.
    #[error("{0} unexpected bytes after the end")]
    TrailingBytes(usize),
    /// A value outside what its field allows (an enum, a timestamp).
    #[error("{0}")]
    Invalid(String),
}

/// A cursor over a binary-protocol body.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> Result<(), ThriftError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(ThriftError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ThriftError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(ThriftError::Truncated {
                needed: n,
                remaining,
            });
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ThriftError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Enters a struct or container; fails past [`MAX_DEPTH`]. Pair with [`Reader::leave`].
    pub fn enter(&mut self) -> Result<(), ThriftError> {
        if self.depth >= MAX_DEPTH {
            return Err(ThriftError::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves what [`Reader::enter`] entered.
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// The next field's type and id, or `None` at the struct's STOP.
    pub fn field_header(&mut self) -> Result<Option<(WireType, i16)>, ThriftError> {
        let [byte] = self.array::<1>()?;
        if byte == 0 {
            return Ok(None);
        }
        let ty = WireType::from_byte(byte)?;
        let id = i16::from_be_bytes(self.array()?);
        Ok(Some((ty, id)))
    }

    /// A `bool`.
    pub fn bool(&mut self) -> Result<bool, ThriftError> {
        match self.array::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            [other] => Err(ThriftError::BadBool(other)),
        }
    }

    /// An `i8`.
    pub fn i8(&mut self) -> Result<i8, ThriftError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    /// An `i16`.
    pub fn i16(&mut self) -> Result<i16, ThriftError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    /// An `i32`.
    pub fn i32(&mut self) -> Result<i32, ThriftError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// An `i64`.
    pub fn i64(&mut self) -> Result<i64, ThriftError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A `double`.
    pub fn double(&mut self) -> Result<f64, ThriftError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// A `binary`, borrowed from the body.
    pub fn binary(&mut self) -> Result<&'a [u8], ThriftError> {
        let length = self.length(1)?;
        self.take(length)
    }

    /// A `string`: a binary that must be UTF-8.
    pub fn string(&mut self) -> Result<String, ThriftError> {
        let bytes = self.binary()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| ThriftError::NotUtf8)
    }

    /// A list (or set) header: element type and count, the count checked
    /// against the bytes left.
    pub fn list_header(&mut self) -> Result<(WireType, usize), ThriftError> {
        let [byte] = self.array::<1>()?;
        let element = WireType::from_byte(byte)?;
        let count = self.length(element.min_size())?;
        Ok((element, count))
    }

    /// A list header whose elements must be `expected`.
    pub fn list_of(&mut self, expected: WireType) -> Result<usize, ThriftError> {
        let (element, count) = self.list_header()?;
        // An empty list may declare any element type; some writers do.
        if element != expected && count > 0 {
            return Err(ThriftError::WrongElementType {
                expected: expected.name(),
                got: element.name(),
            });
        }
        Ok(count)
    }

    /// An `i32` length or count of elements of at least `min_size` bytes,
    /// refused unless the rest of the body can hold it.
    fn length(&mut self, min_size: usize) -> Result<usize, ThriftError> {
        let raw = self.i32()?;
        let length = usize::try_from(raw).map_err(|_| ThriftError::NegativeLength(raw))?;
        let remaining = self.remaining();
        if length.saturating_mul(min_size) > remaining {
            return Err(ThriftError::TooLong { length, remaining });
        }
        Ok(length)
    }

    /// Skips a value of type `ty`: an unknown field, kept for compatibility
    /// with newer IDL versions, as Thrift readers do.
    pub fn skip(&mut self, ty: WireType) -> Result<(), ThriftError> {
        match ty {
            WireType::Bool | WireType::Byte => self.take(1).map(|_| ()),
            WireType::I16 => self.take(2).map(|_| ()),
            WireType::I32 => self.take(4).map(|_| ()),
            WireType::Double | WireType::I64 => self.take(8).map(|_| ()),
            WireType::Uuid => self.take(16).map(|_| ()),
            WireType::Binary => self.binary().map(|_| ()),
            WireType::Struct => {
                self.enter()?;
                while let Some((field, _)) = self.field_header()? {
                    self.skip(field)?;
                }
                self.leave();
                Ok(())
            }
            WireType::List | WireType::Set => {
                self.enter()?;
                let (element, count) = self.list_header()?;
                for _ in 0..count {
                    self.skip(element)?;
                }
                self.leave();
                Ok(())
            }
            WireType::Map => {
                self.enter()?;
                let [k, v] = self.array::<2>()?;
                let (key, value) = (WireType::from_byte(k)?, WireType::from_byte(v)?);
                let count = self.length(key.min_size() + value.min_size())?;
                for _ in 0..count {
                    self.skip(key)?;
                    self.skip(value)?;
                }
                self.leave();
                Ok(())
            }
        }
    }
}

/// Fails unless a known field arrived with the wire type the IDL declares.
pub fn expect(got: WireType, expected: WireType) -> Result<(), ThriftError> {
    if got == expected {
        Ok(())
    } else {
        Err(ThriftError::WrongType {
            expected: expected.name(),
            got: got.name(),
        })
    }
}

/// Test helper: writes binary-protocol values, so that decoder tests can
/// build bodies field by field, including malformed ones.
#[cfg(test)]
pub(crate) mod write {
    /// Field header.
    pub fn field(out: &mut Vec<u8>, ty: u8, id: i16) {
        out.push(ty);
        out.extend_from_slice(&id.to_be_bytes());
    }
    /// STOP.
    pub fn stop(out: &mut Vec<u8>) {
        out.push(0);
    }
    /// `i32`.
    pub fn i32(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    /// `i64`.
    pub fn i64(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    /// `string`.
    pub fn string(out: &mut Vec<u8>, s: &str) {
        i32(out, s.len() as i32);
        out.extend_from_slice(s.as_bytes());
    }
    /// List header.
    pub fn list(out: &mut Vec<u8>, element: u8, count: i32) {
        out.push(element);
        i32(out, count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_big_endian() {
        let mut body = vec![1, 0xff, 0x01, 0x02];
        body.extend_from_slice(&(-2i32).to_be_bytes());
        body.extend_from_slice(&0x0102030405060708i64.to_be_bytes());
        body.extend_from_slice(&1.5f64.to_be_bytes());
        write::string(&mut body, "hé");
        let mut r = Reader::new(&body);
        assert!(r.bool().unwrap());
        assert_eq!(r.i8().unwrap(), -1);
        assert_eq!(r.i16().unwrap(), 0x0102);
        assert_eq!(r.i32().unwrap(), -2);
        assert_eq!(r.i64().unwrap(), 0x0102030405060708);
        assert_eq!(r.double().unwrap(), 1.5);
        assert_eq!(r.string().unwrap(), "hé");
        r.finish().unwrap();
    }

    #[test]
    fn truncation_and_lengths_are_refused() {
        assert_eq!(
            Reader::new(&[0, 0, 1]).i32().unwrap_err(),
            ThriftError::Truncated {
                needed: 4,
                remaining: 3
            }
        );
        let mut body = Vec::new();
        write::i32(&mut body, -1);
        assert_eq!(
            Reader::new(&body).binary().unwrap_err(),
            ThriftError::NegativeLength(-1)
        );
        let mut body = Vec::new();
        write::i32(&mut body, i32::MAX);
        body.extend_from_slice(b"abc");
        assert_eq!(
            Reader::new(&body).binary().unwrap_err(),
            ThriftError::TooLong {
                length: i32::MAX as usize,
                remaining: 3
            }
        );
        // A list of a billion i64 in a few bytes: refused before allocating.
        let mut body = Vec::new();
        write::list(&mut body, 10, 1_000_000_000);
        body.extend_from_slice(&[0; 16]);
        assert!(matches!(
            Reader::new(&body).list_header().unwrap_err(),
            ThriftError::TooLong { .. }
        ));
        assert_eq!(
            Reader::new(&[2]).bool().unwrap_err(),
            ThriftError::BadBool(2)
        );
        let mut r = Reader::new(&[0, 0, 0, 2, 0xc3, 0x28]);
        assert_eq!(r.string().unwrap_err(), ThriftError::NotUtf8);
        assert_eq!(
            Reader::new(&[7]).field_header().unwrap_err(),
            ThriftError::UnknownType(7)
        );
        let r = Reader::new(&[1]);
        assert_eq!(r.finish().unwrap_err(), ThriftError::TrailingBytes(1));
    }

    #[test]
    fn skips_every_type() {
        let mut body = Vec::new();
        write::field(&mut body, 2, 1);
        body.push(1);
        write::field(&mut body, 4, 2);
        body.extend_from_slice(&[0; 8]);
        write::field(&mut body, 11, 3);
        write::string(&mut body, "skip me");
        write::field(&mut body, 15, 4);
        write::list(&mut body, 8, 2);
        write::i32(&mut body, 1);
        write::i32(&mut body, 2);
        write::field(&mut body, 13, 5);
        body.extend_from_slice(&[11, 10]);
        write::i32(&mut body, 1);
        write::string(&mut body, "k");
        write::i64(&mut body, 9);
        write::field(&mut body, 12, 6);
        write::field(&mut body, 16, 1);
        body.extend_from_slice(&[0; 16]);
        write::stop(&mut body);
        write::stop(&mut body);
        let mut r = Reader::new(&body);
        r.skip(WireType::Struct).unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        // A struct whose first field is a struct whose first field is ... a
        // million levels deep: refused at MAX_DEPTH.
        let mut body = Vec::new();
        for _ in 0..1_000_000 {
            write::field(&mut body, 12, 1);
        }
        let mut r = Reader::new(&body);
        assert_eq!(r.skip(WireType::Struct).unwrap_err(), ThriftError::TooDeep);
        // Lists of lists too.
        let mut body = Vec::new();
        for _ in 0..100 {
            write::list(&mut body, 15, 1);
        }
        let mut r = Reader::new(&body);
        assert_eq!(r.skip(WireType::List).unwrap_err(), ThriftError::TooDeep);
    }

    #[test]
    fn list_of_checks_the_element_type() {
        let mut body = Vec::new();
        write::list(&mut body, 8, 1);
        write::i32(&mut body, 1);
        assert_eq!(
            Reader::new(&body).list_of(WireType::Struct).unwrap_err(),
            ThriftError::WrongElementType {
                expected: "struct",
                got: "i32"
            }
        );
        let mut body = Vec::new();
        write::list(&mut body, 8, 0);
        assert_eq!(Reader::new(&body).list_of(WireType::Struct).unwrap(), 0);
        assert_eq!(
            expect(WireType::I64, WireType::Binary)
                .unwrap_err()
                .to_string(),
            "expected string, got i64"
        );
    }
}
