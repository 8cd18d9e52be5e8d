//! `-C/--compression SPEC` parsing and canonical display (borg 1.4 rules and messages).

use std::fmt;
use std::str::FromStr;

use crate::pyrepr::py_repr;

/// A compression setting as given by borg's `-C/--compression SPEC`.
///
/// Levels are validated by [`FromStr`]; values built by hand with out-of-range levels are
/// clamped to the codec's range when compressing (an unknown obfuscation level pads nothing).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// `none`: header `00 00` + the data.
    None,
    /// `lz4` (borg's default): header `01 00` + one raw LZ4 block; falls back to `none`
    /// when LZ4 does not make the data smaller.
    #[default]
    Lz4,
    /// `zstd,L` with L in 1..=22 (default 3): header `03 00` + one zstd frame with content size;
    /// falls back to `none`.
    Zstd(u8),
    /// `zlib,L` with L in 0..=9 (default 6): borg 1.x *legacy* zlib, a bare zlib stream with no
    /// header; never falls back.
    Zlib(u8),
    /// `lzma,L` with L (the xz preset) in 0..=9 (default 6): header `02 00` + an .xz stream
    /// with check type None; falls back to `none`.
    Lzma(u8),
    /// `auto,C`: LZ4 probe first; only data that LZ4 shrinks below 97 % is compressed with C,
    /// whose result is kept only if it is below 99 % of the LZ4 result.
    Auto(Box<Compression>),
    /// `obfuscate,SPEC,C`: header `04 00` + `u32be(len(inner))` + inner payload (compressed with
    /// C) + zero padding. SPEC 1..=6 relative random padding, 110..=123 absolute random padding
    /// up to `2^(SPEC-100)` bytes, 250 Padmé (borg 1.4).
    Obfuscate {
        /// The obfuscation SPEC number (1..=6, 110..=123 or 250).
        level: u8,
        /// The compression applied before padding.
        inner: Box<Compression>,
    },
}

/// Why a `-C/--compression` value was rejected; the texts are borg 1.4's (the CLI prefixes
/// them with `argument -C/--compression: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The algorithm name is not one of none, lz4, zstd, zlib, lzma, auto, obfuscate.
    #[error("unsupported compression type")]
    UnsupportedType,
    /// A level outside the algorithm's range.
    #[error("level must be >= {min} and <= {max}")]
    LevelOutOfRange {
        /// Smallest allowed level.
        min: u8,
        /// Largest allowed level.
        max: u8,
    },
    /// `zstd`/`zlib`/`lzma` given more than one parameter.
    #[error("too many arguments")]
    TooManyArguments,
    /// `auto`/`obfuscate` with the wrong number of comma-separated fields.
    #[error("bad arguments")]
    BadArguments,
    /// An obfuscation SPEC outside 1..=6, 110..=123 and 250.
    #[error("level must be (inclusively) within 1...6, 110...123 or equal to 250")]
    ObfuscateLevel,
    /// A level that is not an integer; carries the whole spec as given (argparse's wording).
    #[error("invalid CompressionSpec value: {}", py_repr(.0))]
    InvalidValue(String),
}

impl Compression {
    /// The algorithm name as used in the spec (`none`, `lz4`, `zstd`, `zlib`, `lzma`, `auto`,
    /// `obfuscate`).
    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd(_) => "zstd",
            Compression::Zlib(_) => "zlib",
            Compression::Lzma(_) => "lzma",
            Compression::Auto(_) => "auto",
            Compression::Obfuscate { .. } => "obfuscate",
        }
    }
}

impl FromStr for Compression {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        parse(s, s)
    }
}

fn parse(s: &str, whole: &str) -> Result<Compression, SpecError> {
    let values: Vec<&str> = s.split(',').collect();
    let count = values.len();
    let level = |default: i64, min: u8, max: u8| -> Result<u8, SpecError> {
        let l = match count {
            1 => default,
            2 => parse_int(values[1]).ok_or_else(|| SpecError::InvalidValue(whole.to_owned()))?,
            _ => return Err(SpecError::TooManyArguments),
        };
        if l < i64::from(min) || l > i64::from(max) {
            return Err(SpecError::LevelOutOfRange { min, max });
        }
        Ok(l as u8)
    };
    match values[0] {
        // borg ignores any parameters given to these two.
        "none" => Ok(Compression::None),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd(level(3, 1, 22)?)),
        "zlib" => Ok(Compression::Zlib(level(6, 0, 9)?)),
        "lzma" => Ok(Compression::Lzma(level(6, 0, 9)?)),
        "auto" => {
            if !(2..=3).contains(&count) {
                return Err(SpecError::BadArguments);
            }
            let inner = parse(&values[1..].join(","), whole)?;
            Ok(Compression::Auto(Box::new(inner)))
        }
        "obfuscate" => {
            if !(3..=5).contains(&count) {
                return Err(SpecError::BadArguments);
            }
            let level =
                parse_int(values[1]).ok_or_else(|| SpecError::InvalidValue(whole.to_owned()))?;
            if !matches!(level, 1..=6 | 110..=123 | 250) {
                return Err(SpecError::ObfuscateLevel);
            }
            let inner = parse(&values[2..].join(","), whole)?;
            Ok(Compression::Obfuscate {
                level: level as u8,
                inner: Box::new(inner),
            })
        }
        _ => Err(SpecError::UnsupportedType),
    }
}

/// Python `int(str)` for ASCII digits: surrounding whitespace, a sign, leading zeros and
/// single underscores between digits are accepted. Values beyond `i64` saturate (they are out
/// of every range anyway).
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty() || bytes[0] == b'_' || bytes[bytes.len() - 1] == b'_' {
        return None;
    }
    let mut value: i64 = 0;
    let mut prev_underscore = false;
    for &b in bytes {
        match b {
            b'0'..=b'9' => {
                value = value.saturating_mul(10).saturating_add(i64::from(b - b'0'));
                prev_underscore = false;
            }
            b'_' if !prev_underscore => prev_underscore = true,
            _ => return None,
        }
    }
    Some(if neg { -value } else { value })
}

impl fmt::Display for Compression {
    /// Canonical spec text with every level spelled out (`zstd` displays as `zstd,3`); it parses
    /// back to an equal value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd(l) => write!(f, "zstd,{l}"),
            Compression::Zlib(l) => write!(f, "zlib,{l}"),
            Compression::Lzma(l) => write!(f, "lzma,{l}"),
            Compression::Auto(inner) => write!(f, "auto,{inner}"),
            Compression::Obfuscate { level, inner } => write!(f, "obfuscate,{level},{inner}"),
        }
    }
}
