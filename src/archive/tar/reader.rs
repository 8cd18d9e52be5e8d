//! A streaming tar reader with the semantics borg's import-tar gets from Python's `tarfile`
//! in stream mode (`r|`): ustar, pax (extended and global headers, `hdrcharset`), GNU long
//! names and links, old-GNU and pax sparse files, V7 directories, `--ignore-zeros`.
//!
//! Entries are returned in order; a regular file's content is read with
//! [`TarReader::content`] before the next call to [`TarReader::next_entry`] (unread data is
//! skipped). Memory use is one entry's headers, never its data.

use std::io::{self, Read};

use super::header::*;

/// The end of the archive or a broken archive.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Python's `tarfile.ReadError` (borg reports these as errors).
    #[error("{0}")]
    Format(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A modification time as the archive gives it: header seconds, or a pax decimal string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MTime {
    Secs(i128),
    Pax(Vec<u8>),
}

impl MTime {
    /// Nanoseconds since the epoch. Pax values keep their full precision (borg goes through
    /// a Python float here, which loses the digits below ~0.1 µs).
    pub fn to_ns(&self) -> i128 {
        match self {
            MTime::Secs(s) => s.saturating_mul(1_000_000_000),
            MTime::Pax(v) => parse_decimal_ns(v).unwrap_or(0),
        }
    }
}

/// Parses `[+-]digits[.digits]` (or anything Python's `float()` takes) into nanoseconds.
pub fn parse_decimal_ns(v: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let plain = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !plain(int) || !plain(frac) {
        // exponents, inf, nan ...: go through a float like Python does
        let f: f64 = s.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        return Some((f * 1e9) as i128);
    }
    let secs: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ns: i128 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        ns += (d - b'0') as i128 * 10i128.pow(8 - i as u32);
    }
    let total = secs.checked_mul(1_000_000_000)?.checked_add(ns)?;
    Some(if neg { -total } else { total })
}

/// How a regular file's content is laid out in the member's data area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `size` bytes of content follow.
    Plain,
    /// Data segments (offset, length) in file order; the rest are holes. For pax sparse
    /// 1.0 the map itself is read from the data area first.
    Sparse(Vec<(u64, u64)>),
    SparseMap10,
}

/// One archive member, after long-name and pax processing.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub linkname: Vec<u8>,
    pub mode: i128,
    pub uid: i128,
    pub gid: i128,
    /// Logical size (the real size for sparse files).
    pub size: u64,
    pub mtime: MTime,
    pub typeflag: u8,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: i128,
    pub devminor: i128,
    /// All pax records in effect (global, then extended), in order.
    pub pax: PaxRecords,
    pub layout: Layout,
}

impl Entry {
    pub fn is_reg(&self) -> bool {
        REGULAR_TYPES.contains(&self.typeflag)
    }
    pub fn pax_get(&self, key: &[u8]) -> Option<&[u8]> {
        self.pax
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn from_header(h: ParsedHeader) -> Entry {
        Entry {
            name: h.name,
            linkname: h.linkname,
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            size: h.size.max(0) as u64,
            mtime: MTime::Secs(h.mtime),
            typeflag: h.typeflag,
            uname: h.uname,
            gname: h.gname,
            devmajor: h.devmajor,
            devminor: h.devminor,
            pax: Vec::new(),
            layout: Layout::Plain,
        }
    }

    /// Python's `_apply_pax_info`.
    fn apply_pax(&mut self, pax: &[(Vec<u8>, Vec<u8>)]) {
        let int = |v: &[u8]| -> i128 {
            std::str::from_utf8(v)
                .ok()
                .map(|s| s.trim().replace('_', ""))
                .and_then(|s| s.parse::<i128>().ok())
                .unwrap_or(0)
        };
        for (k, v) in pax {
            match k.as_slice() {
                b"GNU.sparse.name" => self.name = v.clone(),
                b"GNU.sparse.size" | b"GNU.sparse.realsize" => self.size = int(v).max(0) as u64,
                b"path" => {
                    let mut p = v.clone();
                    while p.last() == Some(&b'/') {
                        p.pop();
                    }
                    self.name = p;
                }
                b"linkpath" => self.linkname = v.clone(),
                b"uname" => self.uname = v.clone(),
                b"gname" => self.gname = v.clone(),
                b"size" => self.size = int(v).max(0) as u64,
                b"uid" => self.uid = int(v),
                b"gid" => self.gid = int(v),
                b"mtime" => self.mtime = MTime::Pax(v.clone()),
                _ => {}
            }
        }
        self.pax = pax.to_vec();
    }
}

fn set_record(list: &mut PaxRecords, k: Vec<u8>, v: Vec<u8>) {
    match list.iter_mut().find(|(key, _)| *key == k) {
        Some(e) => e.1 = v,
        None => list.push((k, v)),
    }
}

enum MemberError {
    Empty,
    Truncated,
    Header(HeaderError),
    Subsequent(String),
    Io(io::Error),
}

impl From<io::Error> for MemberError {
    fn from(e: io::Error) -> Self {
        MemberError::Io(e)
    }
}

pub struct TarReader<R: Read> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    ignore_zeros: bool,
    global: PaxRecords,
    /// Data bytes (with padding) of the current member not consumed yet.
    pending: u64,
    /// Bytes of the current member's data area that hold content (before padding).
    data_left: u64,
    done: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R, ignore_zeros: bool) -> TarReader<R> {
        TarReader {
            inner,
            pos: 0,
            ignore_zeros,
            global: Vec::new(),
            pending: 0,
            data_left: 0,
            done: false,
        }
    }

    /// The input (e.g. to drain it after the end marker).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads up to `buf.len()` bytes; short only at the end of the input.
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = self.read_full(&mut buf[..want])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected end of data",
                ));
            }
            n -= got as u64;
        }
        Ok(())
    }

    fn read_block(&mut self) -> Result<[u8; BLOCK], MemberError> {
        let mut b = [0u8; BLOCK];
        let n = self.read_full(&mut b)?;
        match n {
            0 => Err(MemberError::Empty),
            BLOCK => Ok(b),
            _ => Err(MemberError::Truncated),
        }
    }

    /// Reads `size` bytes of header data (rounded up to blocks).
    fn read_header_data(&mut self, size: i128) -> Result<Vec<u8>, MemberError> {
        let size = size.max(0) as u64;
        let total = block_round(size);
        let mut buf = vec![0u8; total as usize];
        let n = self.read_full(&mut buf)?;
        buf.truncate(n.min(size as usize));
        Ok(buf)
    }

    /// The next member (Python's `TarInfo.fromtarfile`).
    fn read_member(&mut self) -> Result<Entry, MemberError> {
        let block = self.read_block()?;
        let h = parse_header(&block).map_err(MemberError::Header)?;
        let subsequent = |e: MemberError| match e {
            MemberError::Empty => MemberError::Subsequent("empty header".into()),
            MemberError::Truncated => MemberError::Subsequent("truncated header".into()),
            MemberError::Header(HeaderError::Eof) => {
                MemberError::Subsequent("end of file header".into())
            }
            MemberError::Header(HeaderError::Invalid(m)) => MemberError::Subsequent(m.into()),
            other => other,
        };
        match h.typeflag {
            GNUTYPE_LONGNAME | GNUTYPE_LONGLINK => {
                let data = self.read_header_data(h.size)?;
                let mut next = self.read_member().map_err(subsequent)?;
                let value = until_nul(&data).to_vec();
                if h.typeflag == GNUTYPE_LONGNAME {
                    next.name = value;
                } else {
                    next.linkname = value;
                }
                if next.typeflag == DIRTYPE && next.name.ends_with(b"/") {
                    next.name.pop();
                }
                Ok(next)
            }
            GNUTYPE_SPARSE => {
                let (mut structs, mut extended, origsize) =
                    h.sparse.clone().unwrap_or((Vec::new(), false, 0));
                while extended {
                    let b = self.read_block()?;
                    let (more, ext) = parse_sparse_extension(&b);
                    structs.extend(more);
                    extended = ext;
                }
                let stored = h.size.max(0) as u64;
                let mut e = Entry::from_header(h);
                e.layout = Layout::Sparse(
                    structs
                        .into_iter()
                        .map(|(o, n)| (o.max(0) as u64, n.max(0) as u64))
                        .collect(),
                );
                e.size = origsize.max(0) as u64;
                self.pending = block_round(stored);
                self.data_left = stored;
                Ok(e)
            }
            XHDTYPE | XGLTYPE | SOLARIS_XHDTYPE => {
                let data = self.read_header_data(h.size)?;
                let records = parse_pax_records(&data).map_err(MemberError::Header)?;
                let mut pax = if h.typeflag == XGLTYPE {
                    std::mem::take(&mut self.global)
                } else {
                    self.global.clone()
                };
                for (k, v) in records {
                    set_record(&mut pax, k, v);
                }
                if h.typeflag == XGLTYPE {
                    self.global = pax.clone();
                }
                let mut next = self.read_member().map_err(subsequent)?;
                let get = |k: &[u8]| pax.iter().find(|(key, _)| key == k).map(|(_, v)| v);
                if let Some(map) = get(b"GNU.sparse.map") {
                    // sparse 0.1: "offset,size,offset,size,..."
                    let nums: Vec<u64> = String::from_utf8_lossy(map)
                        .split(',')
                        .filter_map(|x| x.trim().parse().ok())
                        .collect();
                    next.layout =
                        Layout::Sparse(nums.chunks_exact(2).map(|c| (c[0], c[1])).collect());
                } else if get(b"GNU.sparse.size").is_some() {
                    // sparse 0.0: repeated offset/numbytes records
                    let mut offs = Vec::new();
                    let mut lens = Vec::new();
                    for (k, v) in parse_pax_records(&data).unwrap_or_default() {
                        let n = String::from_utf8_lossy(&v).trim().parse::<u64>().ok();
                        match (k.as_slice(), n) {
                            (b"GNU.sparse.offset", Some(n)) => offs.push(n),
                            (b"GNU.sparse.numbytes", Some(n)) => lens.push(n),
                            _ => {}
                        }
                    }
                    next.layout = Layout::Sparse(offs.into_iter().zip(lens).collect());
                } else if get(b"GNU.sparse.major").map(|v| v.as_slice()) == Some(b"1")
                    && get(b"GNU.sparse.minor").map(|v| v.as_slice()) == Some(b"0")
                {
                    next.layout = Layout::SparseMap10;
                }
                if h.typeflag != XGLTYPE {
                    next.apply_pax(&pax);
                    if get(b"size").is_some() {
                        let size = if next.is_reg() || !SUPPORTED_TYPES.contains(&next.typeflag) {
                            next.size
                        } else {
                            0
                        };
                        self.pending = block_round(size);
                        self.data_left = size;
                    }
                }
                Ok(next)
            }
            _ => {
                let has_data = h.is_reg() || !SUPPORTED_TYPES.contains(&h.typeflag);
                let size = if has_data { h.size.max(0) as u64 } else { 0 };
                self.pending = block_round(size);
                self.data_left = size;
                let mut e = Entry::from_header(h);
                let g = self.global.clone();
                e.apply_pax(&g);
                if e.typeflag == DIRTYPE {
                    while e.name.last() == Some(&b'/') {
                        e.name.pop();
                    }
                }
                Ok(e)
            }
        }
    }

    /// The next member, or `None` at the end of the archive (Python's `TarFile.next`).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        if self.done {
            return Ok(None);
        }
        if self.pending > 0 {
            let p = self.pending;
            self.pending = 0;
            self.data_left = 0;
            self.skip(p)?;
        }
        loop {
            let start = self.pos;
            match self.read_member() {
                Ok(e) => return Ok(Some(e)),
                Err(MemberError::Io(e)) => return Err(e.into()),
                Err(MemberError::Header(HeaderError::Eof)) if self.ignore_zeros => continue,
                Err(MemberError::Header(HeaderError::Invalid(m))) => {
                    if self.ignore_zeros {
                        continue;
                    }
                    if start == 0 {
                        return Err(ReadError::Format(m.into()));
                    }
                }
                Err(MemberError::Empty) if start == 0 => {
                    return Err(ReadError::Format("empty file".into()))
                }
                Err(MemberError::Truncated) if start == 0 => {
                    return Err(ReadError::Format("truncated header".into()))
                }
                Err(MemberError::Subsequent(m)) => return Err(ReadError::Format(m)),
                Err(_) => {}
            }
            self.done = true;
            return Ok(None);
        }
    }

    /// The content of a regular file member just returned by [`TarReader::next_entry`].
    pub fn content<'r>(&'r mut self, entry: &Entry) -> io::Result<Content<'r, R>> {
        let mut segments: Vec<(u64, u64)> = match &entry.layout {
            Layout::Plain => vec![(0, entry.size)],
            Layout::Sparse(map) => map.clone(),
            Layout::SparseMap10 => self.read_sparse_map10()?,
        };
        // Python's _FileInFile: data segments in order, holes between and after them
        let mut plan = Vec::new();
        let mut last = 0u64;
        for (off, len) in segments.drain(..) {
            if off > last {
                plan.push(Segment::Hole(off - last));
            }
            plan.push(Segment::Data(len));
            last = off.saturating_add(len);
        }
        if last < entry.size {
            plan.push(Segment::Hole(entry.size - last));
        }
        plan.reverse();
        Ok(Content {
            reader: self,
            plan,
            remaining: entry.size,
        })
    }

    /// Reads the decimal sparse map (pax sparse 1.0) from the start of the data area.
    fn read_sparse_map10(&mut self) -> io::Result<Vec<(u64, u64)>> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "invalid sparse map");
        let mut text: Vec<u8> = Vec::new();
        let next_block = |this: &mut Self, text: &mut Vec<u8>| -> io::Result<()> {
            let mut b = [0u8; BLOCK];
            if this.read_full(&mut b)? != BLOCK {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected end of data",
                ));
            }
            this.pending = this.pending.saturating_sub(BLOCK as u64);
            this.data_left = this.data_left.saturating_sub(BLOCK as u64);
            text.extend_from_slice(&b);
            Ok(())
        };
        next_block(self, &mut text)?;
        let mut pos = 0usize;
        let mut numbers = Vec::new();
        let mut want: Option<u64> = None;
        loop {
            if let Some(w) = want {
                if numbers.len() as u64 >= w * 2 {
                    break;
                }
            }
            let Some(nl) = text[pos..].iter().position(|&b| b == b'\n') else {
                next_block(self, &mut text)?;
                continue;
            };
            let n: u64 = std::str::from_utf8(&text[pos..pos + nl])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(bad)?;
            pos += nl + 1;
            if want.is_none() {
                want = Some(n);
            } else {
                numbers.push(n);
            }
        }
        Ok(numbers.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }
}

enum Segment {
    Hole(u64),
    Data(u64),
}

/// A regular file's content (holes of sparse files read as zeros).
pub struct Content<'r, R: Read> {
    reader: &'r mut TarReader<R>,
    /// Remaining segments, last one first.
    plan: Vec<Segment>,
    remaining: u64,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.remaining == 0 || buf.is_empty() {
                return Ok(0);
            }
            let Some(seg) = self.plan.last_mut() else {
                return Ok(0);
            };
            let limit = (buf.len() as u64).min(self.remaining);
            match seg {
                Segment::Hole(0) | Segment::Data(0) => {
                    self.plan.pop();
                }
                Segment::Hole(n) => {
                    let k = (*n).min(limit) as usize;
                    buf[..k].fill(0);
                    *n -= k as u64;
                    self.remaining -= k as u64;
                    return Ok(k);
                }
                Segment::Data(n) => {
                    let r = &mut *self.reader;
                    let k = (*n).min(limit).min(r.data_left) as usize;
                    if k == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "unexpected end of data",
                        ));
                    }
                    let got = loop {
                        match r.inner.read(&mut buf[..k]) {
                            Ok(g) => break g,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    };
                    if got == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "unexpected end of data",
                        ));
                    }
                    r.pos += got as u64;
                    r.pending -= got as u64;
                    r.data_left -= got as u64;
                    *n -= got as u64;
                    self.remaining -= got as u64;
                    return Ok(got);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_times() {
        assert_eq!(
            parse_decimal_ns(b"1700000000.123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_decimal_ns(b"1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_decimal_ns(b"-1.5"), Some(-1_500_000_000));
        assert_eq!(parse_decimal_ns(b"1.5e3"), Some(1_500_000_000_000));
        assert_eq!(parse_decimal_ns(b"x"), None);
    }

    fn member(name: &[u8], typeflag: u8, data: &[u8]) -> Vec<u8> {
        let h = RawHeader {
            name,
            mode: 0o644,
            size: data.len() as i128,
            mtime: 1_700_000_000,
            typeflag,
            magic: Some(GNU_MAGIC),
            ..Default::default()
        };
        let mut out = h.encode(true).unwrap().to_vec();
        let mut d = data.to_vec();
        pad_block(&mut d);
        out.extend(d);
        out
    }

    #[test]
    fn long_names_pax_and_end() {
        let long = vec![b'n'; 150];
        let mut tar = member(
            b"././@LongLink",
            GNUTYPE_LONGNAME,
            &[&long[..], b"\0"].concat(),
        );
        tar.extend(member(&long[..100], REGTYPE, b"hello"));
        let mut recs = pax_record(b"path", b"pax/name");
        recs.extend(pax_record(b"mtime", b"1700000000.25"));
        tar.extend(member(b"././@PaxHeader", XHDTYPE, &recs));
        tar.extend(member(b"short", DIRTYPE, b""));
        tar.extend([0u8; 1024]);
        tar.extend(member(b"after-zeros", REGTYPE, b"x"));
        let mut r = TarReader::new(&tar[..], false);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.name, long);
        let mut s = String::new();
        r.content(&e).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.name, b"pax/name");
        assert_eq!(e.mtime.to_ns(), 1_700_000_000_250_000_000);
        assert!(r.next_entry().unwrap().is_none());
        let mut r = TarReader::new(&tar[..], true);
        let mut names = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            names.push(e.name);
        }
        assert_eq!(names.last().unwrap(), b"after-zeros");
    }

    #[test]
    fn errors_at_start() {
        let mut r = TarReader::new(&b""[..], false);
        assert!(matches!(r.next_entry(), Err(ReadError::Format(m)) if m == "empty file"));
        let junk = vec![b'x'; 512];
        let mut r = TarReader::new(&junk[..], false);
        assert!(r.next_entry().is_err());
    }
}
