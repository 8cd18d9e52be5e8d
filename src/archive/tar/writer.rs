//! A streaming tar writer producing the bytes borg's export-tar writes through Python's
//! `tarfile` (`w|`, GNU format): GNU long-name/long-link members, base-256 numbers,
//! two zero blocks at the end and padding to a 10240-byte record. The pax variant (for
//! `--tar-format=PAX|BORG`) follows `tarfile`'s pax rules (`././@PaxHeader` members,
//! `hdrcharset=BINARY` for non-UTF-8 values, ASCII-only ustar fields).

use std::io::{self, Write};

use super::header::*;
use super::TarFormat;

/// One member to write.
#[derive(Debug, Clone, Default)]
pub struct WriteEntry {
    /// Path (a `/` is appended for directories).
    pub name: Vec<u8>,
    /// Permission bits (only `0o7777` is written).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Content bytes that follow (regular files only).
    pub size: u64,
    pub mtime_ns: i128,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub devmajor: u64,
    pub devminor: u64,
    /// Extra pax records (pax formats only), in order.
    pub pax: PaxRecords,
}

fn overflow(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("overflow in number field ({what})"),
    )
}

/// Python's float view of a ns timestamp: `ns / 1e9`.
fn secs_f64(ns: i128) -> f64 {
    (ns as f64) / 1e9
}

/// A ustar text field as Python encodes it with `ascii`/`replace`: every non-ASCII
/// character (or undecodable byte) becomes `?`.
fn ascii_replace(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c.is_ascii() { c as u8 } else { b'?' });
        }
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

fn long_header(value: &[u8], typeflag: u8) -> io::Result<Vec<u8>> {
    let mut payload = value.to_vec();
    payload.push(0);
    let h = RawHeader {
        name: b"././@LongLink",
        size: payload.len() as i128,
        typeflag,
        magic: Some(GNU_MAGIC),
        ..Default::default()
    };
    let mut out = h.encode(false).map_err(|_| overflow("size"))?.to_vec();
    pad_block(&mut payload);
    out.extend(payload);
    Ok(out)
}

/// Decimal seconds with up to nine fraction digits, no trailing zeros (like GNU tar).
pub fn format_pax_time(ns: i128) -> String {
    let neg = ns < 0;
    let a = ns.unsigned_abs();
    let secs = a / 1_000_000_000;
    let frac = a % 1_000_000_000;
    let mut s = if neg {
        format!("-{secs}")
    } else {
        secs.to_string()
    };
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// All header blocks of one member.
pub fn encode_headers(e: &WriteEntry, format: TarFormat) -> io::Result<Vec<u8>> {
    let mut name = e.name.clone();
    if e.typeflag == DIRTYPE && !name.ends_with(b"/") {
        name.push(b'/');
    }
    let dev = e.typeflag == CHRTYPE || e.typeflag == BLKTYPE;
    let (devmajor, devminor) = if dev {
        (e.devmajor as i128, e.devminor as i128)
    } else {
        (0, 0)
    };
    match format {
        TarFormat::Gnu => {
            let mut out = Vec::new();
            if e.linkname.len() > LENGTH_LINK {
                out.extend(long_header(&e.linkname, GNUTYPE_LONGLINK)?);
            }
            if name.len() > LENGTH_NAME {
                out.extend(long_header(&name, GNUTYPE_LONGNAME)?);
            }
            let h = RawHeader {
                name: &name,
                mode: e.mode as i128,
                uid: e.uid as i128,
                gid: e.gid as i128,
                size: e.size as i128,
                mtime: secs_f64(e.mtime_ns) as i128,
                typeflag: e.typeflag,
                linkname: &e.linkname,
                magic: Some(GNU_MAGIC),
                uname: &e.uname,
                gname: &e.gname,
                devmajor,
                devminor,
                prefix: b"",
            };
            out.extend(h.encode(true).map_err(|_| overflow("header"))?);
            Ok(out)
        }
        TarFormat::Pax | TarFormat::Borg => {
            let mut pax = e.pax.clone();
            let has = |pax: &PaxRecords, k: &[u8]| pax.iter().any(|(x, _)| x == k);
            for (value, key, length) in [
                (&name, &b"path"[..], LENGTH_NAME),
                (&e.linkname, &b"linkpath"[..], LENGTH_LINK),
                (&e.uname, &b"uname"[..], 32),
                (&e.gname, &b"gname"[..], 32),
            ] {
                if has(&pax, key) {
                    continue;
                }
                if !value.is_ascii() || value.len() > length {
                    pax.push((key.to_vec(), value.clone()));
                }
            }
            let mut fields = [
                (e.uid as i128, 8usize, &b"uid"[..]),
                (e.gid as i128, 8, &b"gid"[..]),
                (e.size as i128, 12, &b"size"[..]),
            ];
            for (val, digits, key) in fields.iter_mut() {
                if !(0..(1i128 << (3 * (*digits - 1)))).contains(val) {
                    if !has(&pax, key) {
                        pax.push((key.to_vec(), val.to_string().into_bytes()));
                    }
                    *val = 0;
                }
            }
            let mut mtime = secs_f64(e.mtime_ns).round_ties_even() as i128;
            if !(0..(1i128 << 33)).contains(&mtime) {
                mtime = 0;
            }
            if !has(&pax, b"mtime") {
                pax.push((b"mtime".to_vec(), format_pax_time(e.mtime_ns).into_bytes()));
            }
            let mut out = Vec::new();
            if !pax.is_empty() {
                let binary = pax.iter().any(|(_, v)| std::str::from_utf8(v).is_err());
                let mut records = Vec::new();
                if binary {
                    records.extend_from_slice(b"21 hdrcharset=BINARY\n");
                }
                for (k, v) in &pax {
                    records.extend(pax_record(k, v));
                }
                let h = RawHeader {
                    name: b"././@PaxHeader",
                    size: records.len() as i128,
                    typeflag: XHDTYPE,
                    magic: Some(POSIX_MAGIC),
                    ..Default::default()
                };
                out.extend(h.encode(false).map_err(|_| overflow("pax size"))?);
                pad_block(&mut records);
                out.extend(records);
            }
            let (n, l, u, g) = (
                ascii_replace(&name),
                ascii_replace(&e.linkname),
                ascii_replace(&e.uname),
                ascii_replace(&e.gname),
            );
            let h = RawHeader {
                name: &n,
                mode: e.mode as i128,
                uid: fields[0].0,
                gid: fields[1].0,
                size: fields[2].0,
                mtime,
                typeflag: e.typeflag,
                linkname: &l,
                magic: Some(POSIX_MAGIC),
                uname: &u,
                gname: &g,
                devmajor,
                devminor,
                prefix: b"",
            };
            out.extend(h.encode(false).map_err(|_| overflow("device number"))?);
            Ok(out)
        }
    }
}

/// Writes members one after the other; content is streamed between `begin` and `end`.
pub struct TarWriter<W: Write> {
    out: W,
    format: TarFormat,
    offset: u64,
    /// Content bytes the current member still expects.
    left: u64,
    in_entry: bool,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, format: TarFormat) -> TarWriter<W> {
        TarWriter {
            out,
            format,
            offset: 0,
            left: 0,
            in_entry: false,
        }
    }

    /// Writes the headers of a member; `e.size` content bytes must follow.
    pub fn begin(&mut self, e: &WriteEntry) -> io::Result<()> {
        assert!(!self.in_entry, "previous member not finished");
        let h = encode_headers(e, self.format)?;
        self.out.write_all(&h)?;
        self.offset += h.len() as u64;
        self.left = e.size;
        self.in_entry = true;
        Ok(())
    }

    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more content than the member's size",
            ));
        }
        self.out.write_all(data)?;
        self.left -= data.len() as u64;
        self.offset += data.len() as u64;
        Ok(())
    }

    /// Finishes the member: its content must be complete; pads to a block.
    pub fn end(&mut self) -> io::Result<()> {
        if self.left != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected end of data",
            ));
        }
        let r = (self.offset % BLOCK as u64) as usize;
        if r != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - r])?;
            self.offset += (BLOCK - r) as u64;
        }
        self.in_entry = false;
        Ok(())
    }

    /// Writes the end-of-archive blocks and the record padding; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let zeros = [0u8; RECORD];
        self.out.write_all(&zeros[..2 * BLOCK])?;
        self.offset += 2 * BLOCK as u64;
        let r = (self.offset % RECORD as u64) as usize;
        if r != 0 {
            self.out.write_all(&zeros[..RECORD - r])?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tar::reader::TarReader;
    use std::io::Read;

    #[test]
    fn pax_times() {
        assert_eq!(
            format_pax_time(1_700_000_000_123_456_789),
            "1700000000.123456789"
        );
        assert_eq!(format_pax_time(1_700_000_000_500_000_000), "1700000000.5");
        assert_eq!(format_pax_time(1_700_000_000_000_000_000), "1700000000");
        assert_eq!(format_pax_time(-1_500_000_000), "-1.5");
    }

    #[test]
    fn ascii_fields() {
        assert_eq!(ascii_replace("grüße".as_bytes()), b"gr??e");
        assert_eq!(ascii_replace(b"a\xffb"), b"a?b");
    }

    #[test]
    fn round_trip_both_formats() {
        for format in [TarFormat::Gnu, TarFormat::Pax] {
            let mut w = TarWriter::new(Vec::new(), format);
            let long = [&b"d/"[..], &[b'x'; 120][..]].concat();
            let e = WriteEntry {
                name: long.clone(),
                mode: 0o644,
                uid: 1000,
                gid: 1000,
                uname: "üser".into(),
                gname: b"g".to_vec(),
                size: 3,
                mtime_ns: 1_700_000_000_123_456_789,
                typeflag: REGTYPE,
                ..Default::default()
            };
            w.begin(&e).unwrap();
            w.write_data(b"abc").unwrap();
            w.end().unwrap();
            let d = WriteEntry {
                name: b"dir".to_vec(),
                mode: 0o755,
                typeflag: DIRTYPE,
                mtime_ns: 5_000_000_000,
                ..Default::default()
            };
            w.begin(&d).unwrap();
            w.end().unwrap();
            let out = w.finish().unwrap();
            assert_eq!(out.len() % RECORD, 0);
            let mut r = TarReader::new(&out[..], false);
            let e1 = r.next_entry().unwrap().unwrap();
            assert_eq!(e1.name, long);
            let mut s = Vec::new();
            r.content(&e1).unwrap().read_to_end(&mut s).unwrap();
            assert_eq!(s, b"abc");
            let ns = e1.mtime.to_ns();
            match format {
                TarFormat::Gnu => {
                    assert_eq!(ns, 1_700_000_000_000_000_000);
                    assert_eq!(e1.uname, "üser".as_bytes());
                }
                _ => {
                    assert_eq!(ns, 1_700_000_000_123_456_789);
                    assert_eq!(e1.uname, "üser".as_bytes());
                }
            }
            let e2 = r.next_entry().unwrap().unwrap();
            assert_eq!(e2.name, b"dir");
            assert_eq!(e2.typeflag, DIRTYPE);
            assert!(r.next_entry().unwrap().is_none());
        }
    }
}
