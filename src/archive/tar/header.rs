//! Tar header blocks: number and string fields, checksums, and the block layouts of the
//! formats borg uses (GNU for export; ustar, GNU and pax when reading).
//!
//! Field encodings follow what borg gets from Python's `tarfile`: octal numbers with a NUL
//! terminator, GNU base-256 numbers when a value does not fit (GNU format only), names cut
//! at the field length, the checksum written as six octal digits, NUL and a space.

/// Size of one tar block.
pub const BLOCK: usize = 512;
/// Tar output is padded to a multiple of this record size (20 blocks).
pub const RECORD: usize = BLOCK * 20;

/// Magic and version of GNU headers.
pub const GNU_MAGIC: &[u8; 8] = b"ustar  \0";
/// Magic and version of POSIX (ustar / pax) headers.
pub const POSIX_MAGIC: &[u8; 8] = b"ustar\x0000";

pub const LENGTH_NAME: usize = 100;
pub const LENGTH_LINK: usize = 100;

/// Type flags.
pub const REGTYPE: u8 = b'0';
pub const AREGTYPE: u8 = 0;
pub const LNKTYPE: u8 = b'1';
pub const SYMTYPE: u8 = b'2';
pub const CHRTYPE: u8 = b'3';
pub const BLKTYPE: u8 = b'4';
pub const DIRTYPE: u8 = b'5';
pub const FIFOTYPE: u8 = b'6';
pub const CONTTYPE: u8 = b'7';
pub const GNUTYPE_LONGNAME: u8 = b'L';
pub const GNUTYPE_LONGLINK: u8 = b'K';
pub const GNUTYPE_SPARSE: u8 = b'S';
pub const XHDTYPE: u8 = b'x';
pub const XGLTYPE: u8 = b'g';
pub const SOLARIS_XHDTYPE: u8 = b'X';

/// Types whose data blocks belong to the member (everything else has none, except unknown
/// types, whose data is skipped like a file's).
pub const SUPPORTED_TYPES: &[u8] = &[
    REGTYPE,
    AREGTYPE,
    LNKTYPE,
    SYMTYPE,
    DIRTYPE,
    FIFOTYPE,
    CONTTYPE,
    CHRTYPE,
    BLKTYPE,
    GNUTYPE_LONGNAME,
    GNUTYPE_LONGLINK,
    GNUTYPE_SPARSE,
];
/// Types read as regular files.
pub const REGULAR_TYPES: &[u8] = &[REGTYPE, AREGTYPE, CONTTYPE, GNUTYPE_SPARSE];
const GNU_TYPES: &[u8] = &[GNUTYPE_LONGNAME, GNUTYPE_LONGLINK, GNUTYPE_SPARSE];

/// pax records (keyword, value), in order.
pub type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// The sparse part of an old-GNU header: (offset, length) entries, whether extension
/// blocks follow, and the real file size.
pub type OldSparse = (Vec<(i128, i128)>, bool, i128);

/// Rounds up to whole blocks.
pub fn block_round(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// A value that does not fit its number field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Encodes a number field of `digits` bytes: octal with a NUL terminator when it fits,
/// else (GNU format only) base-256 with a leading 0o200 (positive) or 0o377 (negative).
pub fn encode_number(n: i128, digits: usize, gnu: bool) -> Result<Vec<u8>, Overflow> {
    let octal_limit: i128 = 1i128 << (3 * (digits - 1));
    if (0..octal_limit).contains(&n) {
        let mut s = format!("{:0width$o}", n, width = digits - 1).into_bytes();
        s.push(0);
        return Ok(s);
    }
    let b256_limit: i128 = 1i128 << (8 * (digits - 1));
    if gnu && (-b256_limit..b256_limit).contains(&n) {
        let mut out = vec![0u8; digits];
        let mut v = if n >= 0 {
            out[0] = 0o200;
            n
        } else {
            out[0] = 0o377;
            (1i128 << (8 * digits)) + n
        };
        for i in (1..digits).rev() {
            out[i] = (v & 0xff) as u8;
            v >>= 8;
        }
        return Ok(out);
    }
    Err(Overflow)
}

/// A bytes field: cut at `length`, NUL padded (no terminator when it fills the field).
fn put_str(out: &mut Vec<u8>, s: &[u8], length: usize) {
    let n = s.len().min(length);
    out.extend_from_slice(&s[..n]);
    out.resize(out.len() + (length - n), 0);
}

/// Unsigned and signed header checksums (the checksum field counted as spaces).
pub fn checksums(block: &[u8]) -> (i64, i64) {
    let mut unsigned = 256i64;
    let mut signed = 256i64;
    for (i, &b) in block.iter().enumerate().take(BLOCK) {
        if (148..156).contains(&i) {
            continue;
        }
        unsigned += b as i64;
        signed += b as i8 as i64;
    }
    (unsigned, signed)
}

/// The fields of one header block as written.
#[derive(Debug, Clone, Default)]
pub struct RawHeader<'a> {
    pub name: &'a [u8],
    pub mode: i128,
    pub uid: i128,
    pub gid: i128,
    pub size: i128,
    pub mtime: i128,
    pub typeflag: u8,
    pub linkname: &'a [u8],
    pub magic: Option<&'a [u8; 8]>,
    pub uname: &'a [u8],
    pub gname: &'a [u8],
    pub devmajor: i128,
    pub devminor: i128,
    pub prefix: &'a [u8],
}

impl RawHeader<'_> {
    /// Builds the 512-byte block (`gnu`: numbers may use base-256).
    pub fn encode(&self, gnu: bool) -> Result<[u8; BLOCK], Overflow> {
        let mut b = Vec::with_capacity(BLOCK);
        put_str(&mut b, self.name, 100);
        b.extend(encode_number(self.mode & 0o7777, 8, gnu)?);
        b.extend(encode_number(self.uid, 8, gnu)?);
        b.extend(encode_number(self.gid, 8, gnu)?);
        b.extend(encode_number(self.size, 12, gnu)?);
        b.extend(encode_number(self.mtime, 12, gnu)?);
        b.extend_from_slice(b"        ");
        b.push(self.typeflag);
        put_str(&mut b, self.linkname, 100);
        b.extend_from_slice(self.magic.unwrap_or(POSIX_MAGIC));
        put_str(&mut b, self.uname, 32);
        put_str(&mut b, self.gname, 32);
        if self.typeflag == CHRTYPE || self.typeflag == BLKTYPE {
            b.extend(encode_number(self.devmajor, 8, gnu)?);
            b.extend(encode_number(self.devminor, 8, gnu)?);
        } else {
            b.resize(b.len() + 16, 0);
        }
        put_str(&mut b, self.prefix, 155);
        b.resize(BLOCK, 0);
        let (chk, _) = checksums(&b);
        let c = format!("{chk:06o}\0");
        b[148..148 + c.len()].copy_from_slice(c.as_bytes());
        let mut out = [0u8; BLOCK];
        out.copy_from_slice(&b);
        Ok(out)
    }
}

/// Pads `data` with NULs to whole blocks.
pub fn pad_block(data: &mut Vec<u8>) {
    let r = data.len() % BLOCK;
    if r != 0 {
        data.resize(data.len() + BLOCK - r, 0);
    }
}

/// Why a header block could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// An all-zero block (end of archive).
    Eof,
    /// Bad checksum or number field.
    Invalid(&'static str),
}

/// A number field as written by any tar (octal text or GNU base-256).
pub fn parse_number(s: &[u8]) -> Result<i128, HeaderError> {
    if s.is_empty() {
        return Ok(0);
    }
    if s[0] == 0o200 || s[0] == 0o377 {
        let mut n: i128 = 0;
        for &b in &s[1..] {
            n = n
                .checked_shl(8)
                .ok_or(HeaderError::Invalid("invalid header"))?
                + b as i128;
        }
        if s[0] == 0o377 {
            n -= 1i128 << (8 * (s.len() - 1));
        }
        return Ok(n);
    }
    let s = until_nul(s);
    let text = std::str::from_utf8(s).map_err(|_| HeaderError::Invalid("invalid header"))?;
    if !text.is_ascii() {
        return Err(HeaderError::Invalid("invalid header"));
    }
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    if t.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
        .unwrap_or(digits);
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return Err(HeaderError::Invalid("invalid header"));
    }
    let v = i128::from_str_radix(&digits, 8).map_err(|_| HeaderError::Invalid("invalid header"))?;
    Ok(if neg { -v } else { v })
}

/// The bytes before the first NUL.
pub fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(p) => &s[..p],
        None => s,
    }
}

/// One header block, decoded.
#[derive(Debug, Clone, Default)]
pub struct ParsedHeader {
    pub name: Vec<u8>,
    pub mode: i128,
    pub uid: i128,
    pub gid: i128,
    pub size: i128,
    pub mtime: i128,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: i128,
    pub devminor: i128,
    /// Old GNU sparse header: (entries, is extended, real size).
    pub sparse: Option<OldSparse>,
}

impl ParsedHeader {
    pub fn is_dir(&self) -> bool {
        self.typeflag == DIRTYPE
    }
    pub fn is_reg(&self) -> bool {
        REGULAR_TYPES.contains(&self.typeflag)
    }
}

fn strip_trailing_slashes(v: &mut Vec<u8>) {
    while v.last() == Some(&b'/') {
        v.pop();
    }
}

/// Decodes a header block like Python's `TarInfo.frombuf` (which borg's import-tar uses).
pub fn parse_header(buf: &[u8; BLOCK]) -> Result<ParsedHeader, HeaderError> {
    if buf.iter().all(|&b| b == 0) {
        return Err(HeaderError::Eof);
    }
    let chksum = parse_number(&buf[148..156])?;
    let (u, s) = checksums(buf);
    if chksum != u as i128 && chksum != s as i128 {
        return Err(HeaderError::Invalid("bad checksum"));
    }
    let mut h = ParsedHeader {
        name: until_nul(&buf[0..100]).to_vec(),
        mode: parse_number(&buf[100..108])?,
        uid: parse_number(&buf[108..116])?,
        gid: parse_number(&buf[116..124])?,
        size: parse_number(&buf[124..136])?,
        mtime: parse_number(&buf[136..148])?,
        typeflag: buf[156],
        linkname: until_nul(&buf[157..257]).to_vec(),
        uname: until_nul(&buf[265..297]).to_vec(),
        gname: until_nul(&buf[297..329]).to_vec(),
        devmajor: parse_number(&buf[329..337])?,
        devminor: parse_number(&buf[337..345])?,
        sparse: None,
    };
    let prefix = until_nul(&buf[345..500]);
    // old V7 tars mark directories by a trailing slash only
    if h.typeflag == AREGTYPE && h.name.ends_with(b"/") {
        h.typeflag = DIRTYPE;
    }
    if h.typeflag == GNUTYPE_SPARSE {
        let mut structs = Vec::new();
        let mut pos = 386;
        for _ in 0..4 {
            let (Ok(offset), Ok(numbytes)) = (
                parse_number(&buf[pos..pos + 12]),
                parse_number(&buf[pos + 12..pos + 24]),
            ) else {
                break;
            };
            structs.push((offset, numbytes));
            pos += 24;
        }
        let extended = buf[482] != 0;
        let origsize = parse_number(&buf[483..495])?;
        h.sparse = Some((structs, extended, origsize));
    }
    if h.is_dir() {
        strip_trailing_slashes(&mut h.name);
    }
    if !prefix.is_empty() && !GNU_TYPES.contains(&h.typeflag) {
        let mut n = prefix.to_vec();
        n.push(b'/');
        n.extend_from_slice(&h.name);
        h.name = n;
    }
    Ok(h)
}

/// Parses the sparse entries of an old-GNU extension block; returns (entries, more follow).
pub fn parse_sparse_extension(buf: &[u8; BLOCK]) -> (Vec<(i128, i128)>, bool) {
    let mut out = Vec::new();
    let mut pos = 0;
    for _ in 0..21 {
        let (Ok(offset), Ok(numbytes)) = (
            parse_number(&buf[pos..pos + 12]),
            parse_number(&buf[pos + 12..pos + 24]),
        ) else {
            break;
        };
        if offset != 0 && numbytes != 0 {
            out.push((offset, numbytes));
        }
        pos += 24;
    }
    (out, buf[504] != 0)
}

/// One pax record `"%d %s=%s\n"`: the length counts the whole record including itself.
pub fn pax_record(keyword: &[u8], value: &[u8]) -> Vec<u8> {
    let l = keyword.len() + value.len() + 3;
    let mut p = 0usize;
    loop {
        let n = l + p.to_string().len();
        if n == p {
            break;
        }
        p = n;
    }
    let mut r = p.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(keyword);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Splits pax extended header data into (keyword, value) records, stopping at the first
/// malformed one (a zero length is an error).
pub fn parse_pax_records(buf: &[u8]) -> Result<PaxRecords, HeaderError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = &buf[pos.min(buf.len())..];
        let ndig = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if ndig == 0 || rest.get(ndig) != Some(&b' ') {
            break;
        }
        let kstart = ndig + 1;
        let Some(eq_rel) = rest[kstart..].iter().position(|&b| b == b'=') else {
            break;
        };
        if eq_rel == 0 {
            break;
        }
        let eq = kstart + eq_rel;
        let length: usize = match std::str::from_utf8(&rest[..ndig])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(l) => l,
            None => break,
        };
        if length == 0 {
            return Err(HeaderError::Invalid("invalid header"));
        }
        let vstart = eq + 1;
        let vend = length.saturating_sub(1).min(rest.len());
        let value = if vend > vstart {
            rest[vstart..vend].to_vec()
        } else {
            Vec::new()
        };
        out.push((rest[kstart..eq].to_vec(), value));
        pos += length;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(encode_number(0o644, 8, false).unwrap(), b"0000644\0");
        assert_eq!(
            encode_number(1_700_000_000, 12, true).unwrap(),
            b"14524770400\0"
        );
        let big = encode_number(1 << 40, 12, true).unwrap();
        assert_eq!(big[0], 0o200);
        assert_eq!(parse_number(&big).unwrap(), 1 << 40);
        let neg = encode_number(-5, 12, true).unwrap();
        assert_eq!(neg[0], 0o377);
        assert_eq!(parse_number(&neg).unwrap(), -5);
        assert!(encode_number(1 << 40, 12, false).is_err());
        assert_eq!(parse_number(b" 644 \0").unwrap(), 0o644);
        assert_eq!(parse_number(b"\0\0\0").unwrap(), 0);
        assert!(parse_number(b"89").is_err());
    }

    #[test]
    fn records() {
        let r = pax_record(b"path", b"a");
        assert_eq!(r, b"9 path=a\n");
        let r = pax_record(b"mtime", b"1700000000.5");
        assert_eq!(r, b"22 mtime=1700000000.5\n");
        let mut buf = pax_record(b"path", b"x=y\nz");
        buf.extend(pax_record(b"uname", b"root"));
        let recs = parse_pax_records(&buf).unwrap();
        assert_eq!(recs[0], (b"path".to_vec(), b"x=y\nz".to_vec()));
        assert_eq!(recs[1], (b"uname".to_vec(), b"root".to_vec()));
    }

    #[test]
    fn header_round_trip() {
        let h = RawHeader {
            name: b"dir/file",
            mode: 0o100644,
            uid: 1000,
            gid: 100,
            size: 12,
            mtime: 1_700_000_000,
            typeflag: REGTYPE,
            magic: Some(GNU_MAGIC),
            uname: b"user",
            gname: b"users",
            ..Default::default()
        };
        let b = h.encode(true).unwrap();
        assert_eq!(
            &b[148..156],
            format!("{:06o}\0 ", checksums(&b).0).as_bytes()
        );
        let p = parse_header(&b).unwrap();
        assert_eq!(p.name, b"dir/file");
        assert_eq!(p.mode, 0o644);
        assert_eq!(
            (p.uid, p.gid, p.size, p.mtime),
            (1000, 100, 12, 1_700_000_000)
        );
        assert_eq!(p.uname, b"user");
        assert_eq!(parse_header(&[0u8; BLOCK]).unwrap_err(), HeaderError::Eof);
    }
}
