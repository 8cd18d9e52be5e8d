//! Compression codecs with borg's 2-byte headers, `auto` and `obfuscate`.
//!
//! A *payload* is what goes into (encrypted) repository objects: a 2-byte header naming the
//! codec followed by the codec's body — except borg 1.x's legacy zlib, which is a bare zlib
//! stream recognised by its own CMF/FLG bytes (spec `borg1-objects.md` §5).
//!
//! * Writing: parse a [`Compression`] from the `-C` text, then [`Compression::compress`] or
//!   [`Compression::compress_into`] (appends to a caller's buffer).
//! * Reading: [`decompress`], [`decompress_with_hint`] or [`decompress_into`] detect the codec
//!   from the payload ([`detect`]) like borg does. Hostile input yields a [`DecompressError`],
//!   never a panic, and no output larger than [`DECOMPRESS_LIMIT`] is ever produced.

mod spec;

#[cfg(test)]
mod tests;

pub use spec::{Compression, SpecError};

use std::cell::RefCell;
use std::io::{Cursor, Read, Write};

/// borg's `MAX_DATA_SIZE`: the largest plaintext chunk borg creates (20 MiB − 41 bytes).
/// Obfuscation padding never makes a payload reach this size.
pub const MAX_DATA_SIZE: usize = 20_971_479;

/// Upper bound on the size of any decompressed payload (64 MiB). Real chunks are at most
/// [`MAX_DATA_SIZE`]; anything that claims or produces more is treated as corrupt.
pub const DECOMPRESS_LIMIT: usize = 64 << 20;

const HDR_NONE: [u8; 2] = [0x00, 0x00];
const HDR_LZ4: [u8; 2] = [0x01, 0x00];
const HDR_LZMA: [u8; 2] = [0x02, 0x00];
const HDR_ZSTD: [u8; 2] = [0x03, 0x00];
const HDR_OBFUSCATE: [u8; 2] = [0x04, 0x00];

/// The codec a payload was written with, as recognised by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// `00 00`
    None,
    /// `01 00`
    Lz4,
    /// `02 00` (.xz container)
    Lzma,
    /// `03 00`
    Zstd,
    /// `04 00` (size obfuscation wrapper around another payload)
    Obfuscate,
    /// Legacy zlib: a bare zlib stream (no rborg/borg header).
    Zlib,
}

impl Codec {
    /// borg's name for the codec (`none`, `lz4`, `lzma`, `zstd`, `obfuscate`, `zlib`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Lzma => "lzma",
            Codec::Zstd => "zstd",
            Codec::Obfuscate => "obfuscate",
            Codec::Zlib => "zlib",
        }
    }
}

/// Why a payload could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressError {
    /// Fewer than the two bytes needed to detect a codec.
    #[error("No decompressor for this data found: payload is only {0} byte(s) long")]
    TooShort(usize),
    /// The first two bytes match no known codec.
    #[error("No decompressor for this data found: header {:02x} {:02x}", .0[0], .0[1])]
    UnknownHeader([u8; 2]),
    /// The LZ4 block is malformed.
    #[error("lz4 decompress failed: {0}")]
    Lz4(String),
    /// The zstd body does not start with a zstd frame header.
    #[error("zstd get size failed: data was not compressed by zstd")]
    ZstdNotZstd,
    /// The zstd frame does not record its content size (borg refuses those too).
    #[error("zstd get size failed: original size unknown")]
    ZstdSizeUnknown,
    /// libzstd reported an error.
    #[error("zstd decompress failed: {0}")]
    Zstd(&'static str),
    /// The zstd output length differs from the frame's content size.
    #[error("zstd decompress failed: size mismatch")]
    ZstdSizeMismatch,
    /// The legacy zlib stream is malformed or truncated.
    #[error("zlib decompress failed: {0}")]
    Zlib(String),
    /// The .xz stream is malformed or truncated.
    #[error("lzma decompress failed: {0}")]
    Lzma(String),
    /// The obfuscation wrapper is truncated.
    #[error("obfuscate: {0}")]
    Obfuscate(&'static str),
    /// The payload claims or produces more than [`DECOMPRESS_LIMIT`] bytes.
    #[error("decompressed data would exceed {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
}

// ------------------------------------------------------------------------------------------
// detection and decompression

/// Detects the codec of a payload from its first two bytes, in borg's order
/// (lz4, zstd, none, legacy zlib, lzma, obfuscate).
pub fn detect(payload: &[u8]) -> Result<Codec, DecompressError> {
    let hdr: [u8; 2] = match payload {
        [a, b, ..] => [*a, *b],
        _ => return Err(DecompressError::TooShort(payload.len())),
    };
    Ok(match hdr {
        HDR_LZ4 => Codec::Lz4,
        HDR_ZSTD => Codec::Zstd,
        HDR_NONE => Codec::None,
        [cmf, flg] if cmf & 0x0f == 8 && (u16::from(cmf) * 256 + u16::from(flg)) % 31 == 0 => {
            Codec::Zlib
        }
        HDR_LZMA => Codec::Lzma,
        HDR_OBFUSCATE => Codec::Obfuscate,
        other => return Err(DecompressError::UnknownHeader(other)),
    })
}

/// Where the plaintext of a payload stored without compression (`none`, not obfuscated)
/// starts; `None` for any other payload. Such a plaintext can be used where it lies.
pub fn uncompressed_at(payload: &[u8]) -> Option<usize> {
    match detect(payload) {
        Ok(Codec::None) if payload.len() - 2 <= DECOMPRESS_LIMIT => Some(2),
        _ => None,
    }
}

/// Decompresses a payload of any codec (auto-detected, obfuscation unwrapped) into a new
/// buffer.
pub fn decompress(payload: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    decompress_into(payload, None, &mut out)?;
    Ok(out)
}

/// Like [`decompress`], with the expected plaintext size (e.g. from an item's chunk list) to
/// size the output buffer up front. A wrong hint costs time, never correctness.
pub fn decompress_with_hint(payload: &[u8], size_hint: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    decompress_into(payload, Some(size_hint), &mut out)?;
    Ok(out)
}

/// Decompresses a payload, appending the plaintext to `out`; returns the plaintext length.
/// On error `out` is left as it was.
pub fn decompress_into(
    payload: &[u8],
    size_hint: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<usize, DecompressError> {
    let start = out.len();
    let hint = size_hint.map(|h| h.min(DECOMPRESS_LIMIT));
    match decompress_append(payload, hint, out) {
        Ok(()) => Ok(out.len() - start),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn decompress_append(
    mut payload: &[u8],
    hint: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    // Obfuscation may nest; unwrap it iteratively so hostile nesting cannot exhaust the stack.
    loop {
        let codec = detect(payload)?;
        let body = &payload[2..];
        match codec {
            Codec::Obfuscate => {
                let (len, rest) = match body {
                    [a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]), rest),
                    _ => return Err(DecompressError::Obfuscate("truncated length field")),
                };
                payload = rest
                    .get(..len as usize)
                    .ok_or(DecompressError::Obfuscate("inner length exceeds payload"))?;
            }
            Codec::None => {
                if body.len() > DECOMPRESS_LIMIT {
                    return Err(too_large());
                }
                out.extend_from_slice(body);
                return Ok(());
            }
            Codec::Lz4 => return lz4_decompress(body, hint, out),
            Codec::Zstd => return zstd_decompress(body, out),
            Codec::Zlib => return zlib_decompress(payload, hint, out),
            Codec::Lzma => return xz_decompress(body, hint, out),
        }
    }
}

fn too_large() -> DecompressError {
    DecompressError::TooLarge {
        limit: DECOMPRESS_LIMIT,
    }
}

/// Exact decompressed size of a raw LZ4 block, found by walking its sequences (literals are
/// skipped, not copied). Also rejects truncated blocks and back references before the start.
fn lz4_block_size(src: &[u8], limit: usize) -> Result<usize, DecompressError> {
    let err = |m: &str| DecompressError::Lz4(m.to_owned());
    if src.is_empty() {
        return Err(err("empty block"));
    }
    // Reads an LZ4 length extension (bytes added while they are 255).
    fn extend(src: &[u8], i: &mut usize, mut n: usize) -> Option<usize> {
        loop {
            let b = *src.get(*i)?;
            *i += 1;
            n += usize::from(b);
            if b != 255 {
                return Some(n);
            }
        }
    }
    let mut i = 0usize;
    let mut out = 0usize;
    loop {
        let token = src[i];
        i += 1;
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit = extend(src, &mut i, lit).ok_or_else(|| err("truncated literal length"))?;
        }
        if lit > src.len() - i {
            return Err(err("literals run past the end of the block"));
        }
        i += lit;
        out += lit;
        if i == src.len() {
            break;
        }
        if src.len() - i < 2 {
            return Err(err("truncated match offset"));
        }
        let offset = usize::from(u16::from_le_bytes([src[i], src[i + 1]]));
        i += 2;
        if offset == 0 || offset > out {
            return Err(err("match offset out of bounds"));
        }
        let mut mlen = usize::from(token & 0x0f) + 4;
        if mlen == 19 {
            mlen = extend(src, &mut i, mlen).ok_or_else(|| err("truncated match length"))?;
        }
        out += mlen;
        if out > limit {
            return Err(too_large());
        }
        if i >= src.len() {
            return Err(err("block ends with a match"));
        }
    }
    if out > limit {
        return Err(too_large());
    }
    Ok(out)
}

fn lz4_decode(body: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let start = out.len();
    if out.is_empty() && out.capacity() < cap {
        // Fresh buffer: lz4_flex writes into uninitialised capacity (no zero fill).
        let mut v = lz4_flex::block::decompress(body, cap)
            .map_err(|e| DecompressError::Lz4(e.to_string()))?;
        if v.capacity() - v.len() > v.len() / 4 + 4096 {
            v.shrink_to_fit();
        }
        *out = v;
        return Ok(());
    }
    out.resize(start + cap, 0);
    match lz4_flex::block::decompress_into(body, &mut out[start..]) {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(DecompressError::Lz4(e.to_string()))
        }
    }
}

fn lz4_decompress(
    body: &[u8],
    hint: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    // LZ4 blocks do not record their size. Try the caller's hint (usually exact: the chunk
    // size from the item), or else a guess of 3x the block like borg's first attempt; if the
    // output does not fit, walk the block to learn the exact size (this also bounds bombs).
    if !body.is_empty() {
        let guess = hint.unwrap_or_else(|| body.len().saturating_mul(3).clamp(4096, LZ4_GUESS_MAX));
        if lz4_decode(body, guess, out).is_ok() {
            return Ok(());
        }
    }
    let size = lz4_block_size(body, DECOMPRESS_LIMIT)?;
    lz4_decode(body, size, out)
}

/// Largest LZ4 output buffer allocated on a guess (larger outputs are sized exactly).
const LZ4_GUESS_MAX: usize = 24 << 20;

thread_local! {
    static ZSTD_CCTX: RefCell<Option<zstd_safe::CCtx<'static>>> = const { RefCell::new(None) };
    static ZSTD_DCTX: RefCell<Option<zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// libzstd's error code for "Allocation error : not enough memory" (`-ZSTD_error_memory_allocation`).
const ZSTD_ERROR_MEMORY_ALLOCATION: usize = 64usize.wrapping_neg();

/// Runs `f` with this thread's reusable decompression context (a fresh one if it is busy).
fn with_dctx<R>(f: impl FnOnce(&mut zstd_safe::DCtx<'static>) -> R) -> Option<R> {
    ZSTD_DCTX.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            if slot.is_none() {
                *slot = zstd_safe::DCtx::try_create();
            }
            return slot.as_mut().map(f);
        }
        zstd_safe::DCtx::try_create().map(|mut d| f(&mut d))
    })
}

/// Runs `f` with this thread's reusable compression context (a fresh one if it is busy).
fn with_cctx<R>(f: impl FnOnce(&mut zstd_safe::CCtx<'static>) -> R) -> Option<R> {
    ZSTD_CCTX.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            if slot.is_none() {
                *slot = zstd_safe::CCtx::try_create();
            }
            return slot.as_mut().map(f);
        }
        zstd_safe::CCtx::try_create().map(|mut c| f(&mut c))
    })
}

fn zstd_decompress(body: &[u8], out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let size = match zstd_safe::get_frame_content_size(body) {
        Err(_) => return Err(DecompressError::ZstdNotZstd),
        Ok(None) => return Err(DecompressError::ZstdSizeUnknown),
        Ok(Some(s)) => s,
    };
    if size > DECOMPRESS_LIMIT as u64 {
        return Err(too_large());
    }
    let size = size as usize;
    let start = out.len();
    out.reserve_exact(size);
    let res = with_dctx(|dctx| {
        let mut cur = Cursor::new(&mut *out);
        cur.set_position(start as u64);
        dctx.decompress(&mut cur, body)
    })
    .unwrap_or(Err(ZSTD_ERROR_MEMORY_ALLOCATION));
    match res {
        Ok(n) if n == size && out.len() == start + size => Ok(()),
        Ok(_) => Err(DecompressError::ZstdSizeMismatch),
        Err(code) => Err(DecompressError::Zstd(zstd_safe::get_error_name(code))),
    }
}

fn zlib_decompress(
    stream: &[u8],
    hint: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags::*, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;

    let flags = TINFL_FLAG_PARSE_ZLIB_HEADER
        | TINFL_FLAG_COMPUTE_ADLER32
        | TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let start = out.len();
    let mut cap = hint
        .unwrap_or(0)
        .max(stream.len().saturating_mul(4))
        .clamp(64, DECOMPRESS_LIMIT);
    let mut state = Box::<DecompressorOxide>::default();
    let mut input = stream;
    let mut pos = 0usize;
    out.resize(start + cap, 0);
    loop {
        let (status, used, produced) = decompress(&mut state, input, &mut out[start..], pos, flags);
        pos += produced;
        input = input.get(used..).unwrap_or_default();
        match status {
            TINFLStatus::Done => {
                out.truncate(start + pos);
                return Ok(());
            }
            TINFLStatus::HasMoreOutput => {
                if cap >= DECOMPRESS_LIMIT {
                    return Err(too_large());
                }
                cap = cap.saturating_mul(2).min(DECOMPRESS_LIMIT);
                out.resize(start + cap, 0);
            }
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                return Err(DecompressError::Zlib(
                    "incomplete or truncated stream".into(),
                ))
            }
            TINFLStatus::Adler32Mismatch => {
                return Err(DecompressError::Zlib("incorrect data check".into()))
            }
            other => return Err(DecompressError::Zlib(format!("invalid stream ({other:?})"))),
        }
    }
}

fn xz_decompress(
    body: &[u8],
    hint: Option<usize>,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let start = out.len();
    if let Some(h) = hint {
        out.reserve(h);
    }
    // One stream; like Python's lzma.decompress, bytes after it are ignored. The reader's
    // dictionary grows with the output, so the output limit bounds its memory too.
    let reader = lzma_rust2::XzReader::new(body, false);
    reader
        .take(DECOMPRESS_LIMIT as u64 + 1)
        .read_to_end(out)
        .map_err(|e| DecompressError::Lzma(e.to_string()))?;
    if out.len() - start > DECOMPRESS_LIMIT {
        return Err(too_large());
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// compression

impl Compression {
    /// Compresses `data` into a complete payload (header included; legacy zlib has none).
    pub fn compress(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.max_payload_hint(data.len()));
        self.compress_into(data, &mut out);
        out
    }

    /// Appends the payload for `data` to `out` (no intermediate buffers for none, lz4, zstd,
    /// lzma and obfuscate).
    ///
    /// # Panics
    /// With `obfuscate` only, if the inner payload is 4 GiB or larger (its length field is a
    /// `u32`); chunks are at most [`MAX_DATA_SIZE`].
    pub fn compress_into(&self, data: &[u8], out: &mut Vec<u8>) {
        self.compress_with(data, out, &mut os_random_f64);
    }

    /// Compresses `data` into `buf[start..]` and returns the payload length. `buf` is a reused
    /// buffer whose initialised length is kept as a high-water mark (it is *not* the payload
    /// end): lz4 and none then cost no allocation and no zero fill of the worst-case size.
    pub fn compress_reusing(&self, data: &[u8], buf: &mut Vec<u8>, start: usize) -> usize {
        if matches!(self, Compression::Lz4 | Compression::None) {
            let bound = lz4_flex::block::get_maximum_output_size(data.len()).max(data.len());
            if buf.len() < start + 2 + bound {
                buf.resize(start + 2 + bound, 0);
            }
            if let Compression::Lz4 = self {
                let out = &mut buf[start + 2..start + 2 + bound];
                if let Ok(n) = lz4_flex::block::compress_into(data, out) {
                    if n < data.len() {
                        buf[start..start + 2].copy_from_slice(&HDR_LZ4);
                        return 2 + n;
                    }
                }
            }
            buf[start..start + 2].copy_from_slice(&HDR_NONE);
            buf[start + 2..start + 2 + data.len()].copy_from_slice(data);
            return 2 + data.len();
        }
        buf.resize(start, 0);
        self.compress_into(data, buf);
        buf.len() - start
    }

    /// A capacity that usually avoids reallocation while compressing `len` bytes.
    fn max_payload_hint(&self, len: usize) -> usize {
        match self {
            Compression::Obfuscate { .. } => len + 64,
            _ => len + len / 255 + 32,
        }
    }

    /// [`Self::compress_into`] with an injectable source of uniform `[0, 1)` floats.
    pub(crate) fn compress_with(
        &self,
        data: &[u8],
        out: &mut Vec<u8>,
        random: &mut dyn FnMut() -> f64,
    ) {
        match self {
            Compression::None => store_none(data, out),
            Compression::Lz4 => lz4_compress(data, out),
            Compression::Zstd(level) => zstd_compress(data, (*level).clamp(1, 22), out),
            Compression::Zlib(level) => zlib_compress(data, (*level).min(9), out),
            Compression::Lzma(level) => lzma_compress(data, u32::from(*level).min(9), out),
            Compression::Auto(inner) => auto_compress(inner, data, out, random),
            Compression::Obfuscate { level, inner } => {
                let start = out.len();
                out.extend_from_slice(&HDR_OBFUSCATE);
                out.extend_from_slice(&[0; 4]);
                inner.compress_with(data, out, random);
                let inner_len = out.len() - start - 6;
                let len32 = u32::try_from(inner_len)
                    .expect("obfuscate: inner payload does not fit the u32 length field");
                out[start + 2..start + 6].copy_from_slice(&len32.to_be_bytes());
                let pad = obfuscation_padding(*level, inner_len, random);
                out.resize(out.len() + pad, 0);
            }
        }
    }
}

fn store_none(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + 2);
    out.extend_from_slice(&HDR_NONE);
    out.extend_from_slice(data);
}

/// LZ4 with borg's rule: keep it only if the block is smaller than the data, else `none`.
fn lz4_compress(data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let bound = lz4_flex::block::get_maximum_output_size(data.len());
    out.resize(start + 2 + bound, 0);
    out[start..start + 2].copy_from_slice(&HDR_LZ4);
    match lz4_flex::block::compress_into(data, &mut out[start + 2..]) {
        Ok(n) if n < data.len() => out.truncate(start + 2 + n),
        _ => {
            out.truncate(start);
            store_none(data, out);
        }
    }
}

/// Legacy zlib (no header, never falls back to none).
fn zlib_compress(data: &[u8], level: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec_zlib(data, level));
    // Write the 2-byte zlib header exactly as zlib (and so borg) does: CMF 78 (deflate, 32 KiB
    // window) and zlib's FLEVEL for the level. miniz announces a 256-byte window at level 0
    // (stored blocks, which reference nothing) and maps FLEVEL differently; the header is
    // informational, the stream is the same either way.
    if out[start] & 0x0f == 8 {
        let flevel: u8 = match level {
            0 | 1 => 0,
            2..=5 => 1,
            6 => 2,
            _ => 3,
        };
        let cmf = 0x78u8;
        let mut flg = flevel << 6 | (out[start + 1] & 0x20); // keep FDICT (never set)
        flg += (31 - ((u16::from(cmf) * 256 + u16::from(flg)) % 31) as u8) % 31;
        out[start] = cmf;
        out[start + 1] = flg;
    }
}

fn zstd_compress(data: &[u8], level: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&HDR_ZSTD);
    out.reserve(zstd_safe::compress_bound(data.len()));
    let level = i32::from(level);
    // ZSTD_compressCCtx always records the content size in the frame header.
    let res = with_cctx(|cctx| {
        let mut cur = Cursor::new(&mut *out);
        cur.set_position(start as u64 + 2);
        cctx.compress(&mut cur, data, level)
    })
    .unwrap_or(Err(ZSTD_ERROR_MEMORY_ALLOCATION));
    match res {
        Ok(n) if n < data.len() && out.len() == start + 2 + n => {}
        _ => {
            out.truncate(start);
            store_none(data, out);
        }
    }
}

fn lzma_compress(data: &[u8], preset: u32, out: &mut Vec<u8>) {
    use lzma_rust2::{CheckType, XzOptions, XzWriter};
    let start = out.len();
    out.extend_from_slice(&HDR_LZMA);
    let mut opts = XzOptions::with_preset(preset);
    opts.set_check_sum_type(CheckType::None);
    // A dictionary larger than the input cannot find more matches; shrinking it to the input
    // size (at least 4 KiB) gives the same compression with far less memory and set-up time.
    let fit = data.len().max(4096).next_power_of_two().min(1 << 30) as u32;
    opts.lzma_options.dict_size = opts.lzma_options.dict_size.min(fit);
    let ok = XzWriter::new(&mut *out, opts)
        .and_then(|mut w| {
            w.write_all(data)?;
            w.finish()
        })
        .is_ok();
    if !(ok && out.len() - start - 2 < data.len()) {
        out.truncate(start);
        store_none(data, out);
    }
}

/// borg's `auto,C`: LZ4 decides whether C is worth trying, and C must beat LZ4 by 1 %.
fn auto_compress(
    inner: &Compression,
    data: &[u8],
    out: &mut Vec<u8>,
    random: &mut dyn FnMut() -> f64,
) {
    let start = out.len();
    lz4_compress(data, out);
    let lz4_len = out.len() - start;
    let ratio = lz4_len as f64 / (data.len() + 2) as f64;
    if ratio >= 0.97 || matches!(inner, Compression::Lz4 | Compression::None) {
        // For C = lz4 or none, C can never win the 0.99 test below: skip the work.
        return;
    }
    let exp_start = out.len();
    inner.compress_with(data, out, random);
    let exp_len = out.len() - exp_start;
    if (exp_len as f64 / lz4_len as f64) < 0.99 {
        out.copy_within(exp_start.., start);
        out.truncate(start + exp_len);
    } else {
        out.truncate(exp_start);
    }
}

/// Number of zero bytes `obfuscate,LEVEL` appends after an inner payload of `inner_len` bytes.
fn obfuscation_padding(level: u8, inner_len: usize, random: &mut dyn FnMut() -> f64) -> usize {
    let pad = match level {
        1..=6 => {
            // borg: factor = 0.001 * 10**level; r = max(0.0001, random()); int(len * (factor / r))
            let factor = 0.001 * f64::from(10u32.pow(u32::from(level)));
            let r = random().max(0.0001);
            (inner_len as f64 * (factor / r)) as usize
        }
        110..=123 => ((1u64 << (level - 100)) as f64 * random()) as usize,
        250 => padme(inner_len as u64) as usize - inner_len,
        _ => 0,
    };
    // borg: stay 1 KiB away from MAX_DATA_SIZE (borg itself crashes when the inner payload is
    // already past that point; rborg just adds no padding then).
    pad.min(MAX_DATA_SIZE.saturating_sub(1024 + inner_len))
}

/// Padmé (PURBs, Nikitin et al. 2019) as used by borg 1.4's `obfuscate,250`: round `len` up so
/// that only the top ~log2(log2(len)) + 1 bits may be non-zero.
fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // floor(log2(len)) >= 1
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2(e)) + 1
    let mask = (1u64 << (e - s)) - 1;
    (len + mask) & !mask
}

/// A uniform float in `[0, 1)` with 53 random bits, like Python's `random.random()`.
fn os_random_f64() -> f64 {
    let mut b = [0u8; 8];
    let x = if getrandom::getrandom(&mut b).is_ok() {
        u64::from_ne_bytes(b)
    } else {
        fallback_random_u64()
    };
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Used only if the OS random source fails: the padding then still varies per call.
fn fallback_random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}
