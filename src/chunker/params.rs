//! `--chunker-params`: parsing (borg 1.4 rules and messages), canonical text, msgpack form.

use std::fmt;
use std::str::FromStr;

use crate::msgpack::Value;
use crate::pyrepr::py_repr;

/// borg's `MAX_DATA_SIZE`: the largest fixed block / header size accepted.
pub const MAX_DATA_SIZE: u32 = 20_971_479;

/// Chunker parameters as recorded in an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkerParams {
    /// Content-defined chunking: chunks of `2^min_exp ..= 2^max_exp` bytes, cut where the low
    /// `mask_bits` bits of the buzhash of a `window`-byte window are zero.
    Buzhash {
        min_exp: u32,
        max_exp: u32,
        mask_bits: u32,
        window: u32,
    },
    /// An optional `header_size`-byte first chunk, then `block_size`-byte chunks.
    Fixed { block_size: u32, header_size: u32 },
}

/// Why chunker parameters were rejected. `Display` gives borg 1.4's message where borg has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Wrong shape (unknown algorithm or wrong number of values).
    #[error("invalid chunker params")]
    Invalid,
    /// A value is not an integer; borg (argparse) reports the whole argument.
    #[error("invalid ChunkerParams value: {}", py_repr(.0))]
    NotAnInteger(String),
    #[error("required: chunk_min <= chunk_mask <= chunk_max")]
    Order,
    #[error("min. chunk size exponent must not be less than 6 (2^6 = 64B min. chunk size)")]
    MinTooSmall,
    #[error("max. chunk size exponent must not be more than 23 (2^23 = 8MiB max. chunk size)")]
    MaxTooLarge,
    #[error("window_size must be an uneven (odd) number")]
    WindowEven,
    /// Spec 8.1: `WINDOW + 2^MIN_EXP + 1 <= 2^MAX_EXP` (borg only asserts this later, when the
    /// chunker is built; the message is rborg's).
    #[error("window_size + 2^chunk_min + 1 must not exceed 2^chunk_max")]
    WindowTooLarge,
    #[error("block_size must not be less than 64 Bytes")]
    BlockTooSmall,
    #[error("block_size and header_size must not exceed MAX_DATA_SIZE [20971479]")]
    TooLarge,
    /// rborg's message (borg would accept a negative header and fail later).
    #[error("header_size must not be negative")]
    NegativeHeader,
    /// The archive's msgpack value is not a chunker-params array rborg can use.
    #[error("unusable chunker params in archive: {0}")]
    BadValue(String),
}

/// Python's `int(str)` for the decimal forms people type: surrounding whitespace, a sign,
/// digits with single `_` between them. Values beyond i128 saturate (only their size matters).
fn py_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let b = digits.as_bytes();
    if b.is_empty() || b[0] == b'_' || b[b.len() - 1] == b'_' {
        return None;
    }
    let mut v: i128 = 0;
    let mut prev_us = false;
    for &c in b {
        match c {
            b'_' if !prev_us => prev_us = true,
            b'0'..=b'9' => {
                prev_us = false;
                v = v.saturating_mul(10).saturating_add((c - b'0') as i128);
            }
            _ => return None,
        }
    }
    Some(if neg { -v } else { v })
}

impl ChunkerParams {
    /// `buzhash,19,23,21,4095`: borg's default for file content.
    pub const DEFAULT: ChunkerParams = ChunkerParams::Buzhash {
        min_exp: 19,
        max_exp: 23,
        mask_bits: 21,
        window: 4095,
    };
    /// `buzhash,15,19,17,4095`: borg's parameters for the item-metadata stream.
    pub const ITEMS: ChunkerParams = ChunkerParams::Buzhash {
        min_exp: 15,
        max_exp: 19,
        mask_bits: 17,
        window: 4095,
    };

    /// Parse `--chunker-params` text: `buzhash,MIN,MAX,MASK,WINDOW`, legacy `MIN,MAX,MASK,WINDOW`,
    /// `default`, or `fixed,BLOCK[,HEADER]`, validated like borg 1.4 (same messages).
    pub fn parse(s: &str) -> Result<ChunkerParams, ParamsError> {
        let not_int = || ParamsError::NotAnInteger(s.to_string());
        let parts: Vec<&str> = s.trim().split(',').collect();
        let count = parts.len();
        let algo = parts[0].to_lowercase();
        if algo == "fixed" && (2..=3).contains(&count) {
            let block = py_int(parts[1]).ok_or_else(not_int)?;
            let header = if count == 3 {
                py_int(parts[2]).ok_or_else(not_int)?
            } else {
                0
            };
            if block < 64 {
                return Err(ParamsError::BlockTooSmall);
            }
            if block > MAX_DATA_SIZE as i128 || header > MAX_DATA_SIZE as i128 {
                return Err(ParamsError::TooLarge);
            }
            if header < 0 {
                return Err(ParamsError::NegativeHeader);
            }
            return Ok(ChunkerParams::Fixed {
                block_size: block as u32,
                header_size: header as u32,
            });
        }
        if algo == "default" && count == 1 {
            return Ok(ChunkerParams::DEFAULT);
        }
        // borg: `algo == 'buzhash' and count == 5 or count == 4` (any first word with 4 values
        // is tried as the legacy form, so `fixed,1,2,3` fails as a non-integer).
        if (algo == "buzhash" && count == 5) || count == 4 {
            let mut v = [0i128; 4];
            for (d, p) in v.iter_mut().zip(&parts[count - 4..]) {
                *d = py_int(p).ok_or_else(not_int)?;
            }
            let [min, max, mask, window] = v;
            if !(min <= mask && mask <= max) {
                return Err(ParamsError::Order);
            }
            if min < 6 {
                return Err(ParamsError::MinTooSmall);
            }
            if max > 23 {
                return Err(ParamsError::MaxTooLarge);
            }
            if window % 2 == 0 {
                return Err(ParamsError::WindowEven);
            }
            // Now 6 <= min <= mask <= max <= 23 and window is odd.
            if window < 1 || window + (1i128 << min) + 1 > (1i128 << max) {
                return Err(ParamsError::WindowTooLarge);
            }
            return Ok(ChunkerParams::Buzhash {
                min_exp: min as u32,
                max_exp: max as u32,
                mask_bits: mask as u32,
                window: window as u32,
            });
        }
        Err(ParamsError::Invalid)
    }

    /// The archive form: `["buzhash", 19, 23, 21, 4095]` / `["fixed", 4096, 0]`, the algorithm
    /// name as a raw (byte) string.
    pub fn to_value(&self) -> Value {
        match *self {
            ChunkerParams::Buzhash {
                min_exp,
                max_exp,
                mask_bits,
                window,
            } => Value::Array(vec![
                Value::Bytes(b"buzhash".to_vec()),
                Value::Int(min_exp as i128),
                Value::Int(max_exp as i128),
                Value::Int(mask_bits as i128),
                Value::Int(window as i128),
            ]),
            ChunkerParams::Fixed {
                block_size,
                header_size,
            } => Value::Array(vec![
                Value::Bytes(b"fixed".to_vec()),
                Value::Int(block_size as i128),
                Value::Int(header_size as i128),
            ]),
        }
    }

    /// Read the archive form; also accepts borg < 1.2's 4-integer array (buzhash) and a
    /// 2-element `["fixed", BLOCK]`. Values must be usable by [`crate::chunker::Chunker`]
    /// (see [`ChunkerParams::check_usable`]); borg's stricter command-line limits are not applied.
    pub fn from_value(v: &Value) -> Result<ChunkerParams, ParamsError> {
        let bad = |m: &str| ParamsError::BadValue(m.to_string());
        let arr = v.as_array().map_err(|e| bad(&e.to_string()))?;
        let int = |x: &Value| -> Result<u32, ParamsError> {
            let i = x.as_int().map_err(|e| bad(&e.to_string()))?;
            u32::try_from(i).map_err(|_| bad(&format!("value {i} out of range")))
        };
        let p = match arr.first() {
            Some(Value::Bytes(name)) => match (name.as_slice(), arr.len()) {
                (b"buzhash", 5) => ChunkerParams::Buzhash {
                    min_exp: int(&arr[1])?,
                    max_exp: int(&arr[2])?,
                    mask_bits: int(&arr[3])?,
                    window: int(&arr[4])?,
                },
                (b"fixed", 2 | 3) => ChunkerParams::Fixed {
                    block_size: int(&arr[1])?,
                    header_size: if arr.len() == 3 { int(&arr[2])? } else { 0 },
                },
                _ => return Err(bad(&format!("{v:?}"))),
            },
            Some(Value::Int(_)) if arr.len() == 4 => ChunkerParams::Buzhash {
                min_exp: int(&arr[0])?,
                max_exp: int(&arr[1])?,
                mask_bits: int(&arr[2])?,
                window: int(&arr[3])?,
            },
            _ => return Err(bad(&format!("{v:?}"))),
        };
        p.check_usable()?;
        Ok(p)
    }

    /// The structural limits the chunker itself needs (looser than borg's command-line rules):
    /// buzhash `min_exp <= max_exp <= 30`, `mask_bits <= 32`, `window >= 1`,
    /// `window + 2^min_exp + 1 <= 2^max_exp`; fixed `block_size >= 1`.
    pub fn check_usable(&self) -> Result<(), ParamsError> {
        match *self {
            ChunkerParams::Buzhash {
                min_exp,
                max_exp,
                mask_bits,
                window,
            } => {
                if min_exp > max_exp || max_exp > 30 || mask_bits > 32 {
                    return Err(ParamsError::BadValue(format!(
                        "unsupported buzhash params {self}"
                    )));
                }
                if window < 1 || window as u64 + (1u64 << min_exp) + 1 > (1u64 << max_exp) {
                    return Err(ParamsError::WindowTooLarge);
                }
            }
            ChunkerParams::Fixed { block_size, .. } => {
                if block_size == 0 {
                    return Err(ParamsError::BadValue("fixed block size 0".into()));
                }
            }
        }
        Ok(())
    }

    /// The largest chunk these parameters can produce.
    pub fn max_chunk_size(&self) -> usize {
        match *self {
            ChunkerParams::Buzhash { max_exp, .. } => 1usize << max_exp,
            ChunkerParams::Fixed {
                block_size,
                header_size,
            } => block_size.max(header_size) as usize,
        }
    }

    /// The algorithm name (`buzhash` or `fixed`).
    pub fn algorithm(&self) -> &'static str {
        match self {
            ChunkerParams::Buzhash { .. } => "buzhash",
            ChunkerParams::Fixed { .. } => "fixed",
        }
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams::DEFAULT
    }
}

/// Canonical text, accepted by [`ChunkerParams::parse`]: `buzhash,19,23,21,4095`,
/// `fixed,4096,0`.
impl fmt::Display for ChunkerParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChunkerParams::Buzhash {
                min_exp,
                max_exp,
                mask_bits,
                window,
            } => write!(f, "buzhash,{min_exp},{max_exp},{mask_bits},{window}"),
            ChunkerParams::Fixed {
                block_size,
                header_size,
            } => write!(f, "fixed,{block_size},{header_size}"),
        }
    }
}

impl FromStr for ChunkerParams {
    type Err = ParamsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChunkerParams::parse(s)
    }
}
