//! msgpack as borg 1.x writes it.
//!
//! borg packs with msgpack-python's legacy settings (`use_bin_type=False`): every string *and*
//! every byte string is a "raw" (fixstr / str16 / str32 — never str8, never bin). Integers use the
//! smallest encoding. This module owns that encoding for every format in rborg (items, archives,
//! manifest, key blobs, hints, integrity files, RPC). On read it is lenient: str8 and bin are
//! accepted as raw bytes.

use std::fmt;

use rmp::encode as enc;
use rmp::Marker;

/// A decoded msgpack value. Strings and byte strings are both `Bytes` (borg's `raw=True`).
#[derive(Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Every integer fits i128 (msgpack's range is i64 ∪ u64).
    Int(i128),
    Float(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Pairs in wire order; writers that need sorted keys sort before packing.
    Map(Vec<(Value, Value)>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("msgpack data ends early")]
    Incomplete,
    #[error("unsupported msgpack marker 0x{0:02x}")]
    BadMarker(u8),
    #[error("msgpack nesting too deep")]
    TooDeep,
    #[error("expected {expected}, found {found}")]
    Type {
        expected: &'static str,
        found: &'static str,
    },
    #[error("missing key {0:?}")]
    MissingKey(String),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) if s.chars().all(|c| !c.is_control()) => write!(f, "{s:?}"),
                _ => write!(f, "h'{}'", hex::encode(b)),
            },
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
        }
    }
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "raw",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    pub fn str(s: impl AsRef<[u8]>) -> Value {
        Value::Bytes(s.as_ref().to_vec())
    }

    pub fn as_bytes(&self) -> Result<&[u8], DecodeError> {
        match self {
            Value::Bytes(b) => Ok(b),
            v => Err(type_err("raw", v)),
        }
    }
    pub fn into_bytes(self) -> Result<Vec<u8>, DecodeError> {
        match self {
            Value::Bytes(b) => Ok(b),
            v => Err(type_err("raw", &v)),
        }
    }
    pub fn as_str(&self) -> Result<String, DecodeError> {
        // borg uses surrogateescape; lossless display of undecodable bytes is not possible in a
        // Rust String, so callers that must round-trip keep the bytes instead.
        Ok(String::from_utf8_lossy(self.as_bytes()?).into_owned())
    }
    pub fn as_int(&self) -> Result<i128, DecodeError> {
        match self {
            Value::Int(i) => Ok(*i),
            v => Err(type_err("int", v)),
        }
    }
    pub fn as_i64(&self) -> Result<i64, DecodeError> {
        let i = self.as_int()?;
        i64::try_from(i).map_err(|_| DecodeError::Type {
            expected: "int64",
            found: "big int",
        })
    }
    pub fn as_u64(&self) -> Result<u64, DecodeError> {
        let i = self.as_int()?;
        u64::try_from(i).map_err(|_| DecodeError::Type {
            expected: "uint64",
            found: "negative int",
        })
    }
    pub fn as_bool(&self) -> Result<bool, DecodeError> {
        match self {
            Value::Bool(b) => Ok(*b),
            v => Err(type_err("bool", v)),
        }
    }
    pub fn as_array(&self) -> Result<&[Value], DecodeError> {
        match self {
            Value::Array(a) => Ok(a),
            v => Err(type_err("array", v)),
        }
    }
    pub fn into_array(self) -> Result<Vec<Value>, DecodeError> {
        match self {
            Value::Array(a) => Ok(a),
            v => Err(type_err("array", &v)),
        }
    }
    pub fn as_map(&self) -> Result<&[(Value, Value)], DecodeError> {
        match self {
            Value::Map(m) => Ok(m),
            v => Err(type_err("map", v)),
        }
    }
    pub fn into_map(self) -> Result<Vec<(Value, Value)>, DecodeError> {
        match self {
            Value::Map(m) => Ok(m),
            v => Err(type_err("map", &v)),
        }
    }
    /// Looks a raw-string key up in a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Value::Bytes(b) if b == key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn req(&self, key: &str) -> Result<&Value, DecodeError> {
        self.get(key)
            .ok_or_else(|| DecodeError::MissingKey(key.to_string()))
    }
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Nil => out.push(0xc0),
            Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Value::Int(i) => pack_int(out, *i),
            Value::Float(x) => {
                enc::write_f64(out, *x).expect("vec write");
            }
            Value::Bytes(b) => pack_raw(out, b),
            Value::Array(a) => {
                pack_array_len(out, a.len());
                for v in a {
                    v.encode(out);
                }
            }
            Value::Map(m) => {
                pack_map_len(out, m.len());
                for (k, v) in m {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }
}

fn type_err(expected: &'static str, v: &Value) -> DecodeError {
    DecodeError::Type {
        expected,
        found: v.type_name(),
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Bytes(s.as_bytes().to_vec())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Bytes(s.into_bytes())
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Bytes(b.to_vec())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(i: $t) -> Self { Value::Int(i as i128) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

/// A map with raw-string keys, packed with keys sorted bytewise (borg's `sorted(dict)` order for
/// the ASCII keys it uses).
pub fn sorted_map(mut pairs: Vec<(&str, Value)>) -> Value {
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// An insertion-ordered map with raw-string keys (hints, integrity and RPC dicts keep Python's
/// dict order).
pub fn ordered_map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

// ---- packing primitives (hot paths pack directly into a buffer) ----

pub fn pack_raw(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 0x1_0000 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

pub fn pack_int(out: &mut Vec<u8>, i: i128) {
    if i >= 0 {
        let u = u64::try_from(i).expect("msgpack int out of range");
        enc::write_uint(out, u).expect("vec write");
    } else {
        let s = i64::try_from(i).expect("msgpack int out of range");
        enc::write_sint(out, s).expect("vec write");
    }
}

pub fn pack_array_len(out: &mut Vec<u8>, n: usize) {
    enc::write_array_len(out, n as u32).expect("vec write");
}

pub fn pack_map_len(out: &mut Vec<u8>, n: usize) {
    enc::write_map_len(out, n as u32).expect("vec write");
}

pub fn pack_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

pub fn pack_bool(out: &mut Vec<u8>, b: bool) {
    out.push(if b { 0xc3 } else { 0xc2 });
}

// ---- decoding ----

const MAX_DEPTH: usize = 64;

/// Reads msgpack values one after another from a byte slice (a "stream" is just concatenated
/// values). On `Incomplete` the position is left unchanged so the caller can append data.
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Decoder { data, pos: 0 }
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Decodes the next value; `Ok(None)` at a clean end of input.
    pub fn next_value(&mut self) -> Result<Option<Value>, DecodeError> {
        if self.is_empty() {
            return Ok(None);
        }
        let start = self.pos;
        match self.value(0) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                self.pos = start;
                Err(e)
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.data.len() - self.pos < n {
            return Err(DecodeError::Incomplete);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("len"))
    }
    fn len_checked(&self, n: u64) -> Result<usize, DecodeError> {
        // Each element takes at least one byte, so a length beyond the remaining input can only
        // complete with more data; never allocate for it up front.
        if n > (self.data.len() - self.pos) as u64 {
            return Err(DecodeError::Incomplete);
        }
        Ok(n as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let m = self.u8()?;
        Ok(match Marker::from_u8(m) {
            Marker::FixPos(v) => Value::Int(v as i128),
            Marker::FixNeg(v) => Value::Int(v as i128),
            Marker::Null => Value::Nil,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::U8 => Value::Int(self.u8()? as i128),
            Marker::U16 => Value::Int(u16::from_be_bytes(self.be()?) as i128),
            Marker::U32 => Value::Int(u32::from_be_bytes(self.be()?) as i128),
            Marker::U64 => Value::Int(u64::from_be_bytes(self.be()?) as i128),
            Marker::I8 => Value::Int(self.u8()? as i8 as i128),
            Marker::I16 => Value::Int(i16::from_be_bytes(self.be()?) as i128),
            Marker::I32 => Value::Int(i32::from_be_bytes(self.be()?) as i128),
            Marker::I64 => Value::Int(i64::from_be_bytes(self.be()?) as i128),
            Marker::F32 => Value::Float(f32::from_be_bytes(self.be()?) as f64),
            Marker::F64 => Value::Float(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(n) => self.raw(n as u64)?,
            Marker::Str8 | Marker::Bin8 => {
                let n = self.u8()? as u64;
                self.raw(n)?
            }
            Marker::Str16 | Marker::Bin16 => {
                let n = u16::from_be_bytes(self.be()?) as u64;
                self.raw(n)?
            }
            Marker::Str32 | Marker::Bin32 => {
                let n = u32::from_be_bytes(self.be()?) as u64;
                self.raw(n)?
            }
            Marker::FixArray(n) => self.array(n as u64, depth)?,
            Marker::Array16 => {
                let n = u16::from_be_bytes(self.be()?) as u64;
                self.array(n, depth)?
            }
            Marker::Array32 => {
                let n = u32::from_be_bytes(self.be()?) as u64;
                self.array(n, depth)?
            }
            Marker::FixMap(n) => self.map(n as u64, depth)?,
            Marker::Map16 => {
                let n = u16::from_be_bytes(self.be()?) as u64;
                self.map(n, depth)?
            }
            Marker::Map32 => {
                let n = u32::from_be_bytes(self.be()?) as u64;
                self.map(n, depth)?
            }
            _ => return Err(DecodeError::BadMarker(m)),
        })
    }

    fn raw(&mut self, n: u64) -> Result<Value, DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Incomplete)?;
        Ok(Value::Bytes(self.take(n)?.to_vec()))
    }
    fn array(&mut self, n: u64, depth: usize) -> Result<Value, DecodeError> {
        let n = self.len_checked(n)?;
        let mut v = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            v.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(v))
    }
    fn map(&mut self, n: u64, depth: usize) -> Result<Value, DecodeError> {
        let n = self.len_checked(n)?;
        let mut v = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let val = self.value(depth + 1)?;
            v.push((k, val));
        }
        Ok(Value::Map(v))
    }
}

/// Decodes exactly one value that must span the whole input.
pub fn decode(data: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder::new(data);
    let v = d.next_value()?.ok_or(DecodeError::Incomplete)?;
    if !d.is_empty() {
        return Err(DecodeError::Type {
            expected: "single value",
            found: "trailing bytes",
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_family_only() {
        let mut out = Vec::new();
        pack_raw(&mut out, &[7u8; 32]);
        assert_eq!(&out[..3], &[0xda, 0x00, 0x20]);
        out.clear();
        pack_raw(&mut out, b"version");
        assert_eq!(out[0], 0xa7);
        out.clear();
        pack_raw(&mut out, &vec![0u8; 70000]);
        assert_eq!(out[0], 0xdb);
    }

    #[test]
    fn ints_smallest() {
        let cases: &[(i128, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (468, &[0xcd, 0x01, 0xd4]),
            (-1, &[0xff]),
            (-33, &[0xd0, 0xdf]),
            (-1622337299, &[0xd2, 0x9f, 0x4d, 0x18, 0xed]),
            (
                1700000001000000000,
                &[0xcf, 0x17, 0x97, 0x9c, 0xfe, 0x71, 0xc4, 0xca, 0x00],
            ),
        ];
        for (i, want) in cases {
            let mut out = Vec::new();
            pack_int(&mut out, *i);
            assert_eq!(&out[..], *want, "{i}");
            assert_eq!(decode(&out).unwrap(), Value::Int(*i));
        }
    }

    #[test]
    fn roundtrip_nested() {
        let v = sorted_map(vec![
            (
                "b",
                Value::Array(vec![Value::Nil, true.into(), 5u32.into()]),
            ),
            ("a", Value::Bytes(vec![1, 2, 3])),
        ]);
        let bytes = v.to_bytes();
        assert_eq!(bytes[0], 0x82);
        assert_eq!(&bytes[1..3], b"\xa1a");
        assert_eq!(decode(&bytes).unwrap(), v);
    }

    #[test]
    fn lenient_reader_accepts_str8_and_bin() {
        assert_eq!(
            decode(&[0xd9, 1, b'x']).unwrap(),
            Value::Bytes(b"x".to_vec())
        );
        assert_eq!(decode(&[0xc4, 1, 9]).unwrap(), Value::Bytes(vec![9]));
    }

    #[test]
    fn incomplete_and_hostile() {
        let mut d = Decoder::new(&[0xda, 0x00, 0x20, 1, 2]);
        assert_eq!(d.next_value(), Err(DecodeError::Incomplete));
        assert_eq!(d.position(), 0);
        // a huge array length in a tiny buffer must not allocate
        assert_eq!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Incomplete)
        );
        assert_eq!(decode(&[0xc1]), Err(DecodeError::BadMarker(0xc1)));
        let mut deep = vec![0x91u8; 1000];
        deep.push(0xc0);
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
    }
}
