//! Segment files: the append-only log of PUT / DELETE / COMMIT entries under `data/`.
//!
//! Layout: 8-byte magic `BORG_SEG`, then entries `crc32(4) size(4) tag(1) [key(32)] [value]`,
//! little-endian, `size` counting the whole entry, the CRC covering everything after itself.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::atomic;
use crate::repo::{ObjectId, RepoError, Result, MAX_OBJECT_SIZE};

pub const MAGIC: &[u8; 8] = b"BORG_SEG";
pub const ATTIC_MAGIC: &[u8; 8] = b"ATTICSEG";
pub const TAG_PUT: u8 = 0;
pub const TAG_DELETE: u8 = 1;
pub const TAG_COMMIT: u8 = 2;
/// Highest tag value a salvage scan accepts as plausible.
pub const MAX_TAG_ID: u8 = 15;
pub const HEADER_SIZE: usize = 9;
pub const PUT_HEADER_SIZE: usize = 41;
/// The constant COMMIT entry.
pub const COMMIT_ENTRY: [u8; 9] = [0x40, 0xf4, 0x3c, 0x25, 0x09, 0x00, 0x00, 0x00, 0x02];
/// Segment numbers above this collide with the hashindex's reserved marker values.
pub const MAX_SEGMENT_NUMBER: u32 = 4_294_966_271;

/// One parsed entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub tag: u8,
    /// Zero for COMMIT.
    pub key: ObjectId,
    pub offset: u32,
    /// Whole entry size including header (and key).
    pub size: u32,
    /// The value of a PUT, when requested.
    pub data: Option<Vec<u8>>,
}

/// How much of each entry to read while iterating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Headers and keys only, values skipped without CRC check (fast `scan`).
    HeadersOnly,
    /// Everything read and CRC-verified, values discarded.
    Verify,
    /// Everything read, verified and returned.
    WithData,
}

pub fn entry_crc(after_crc: &[u8]) -> u32 {
    crc32fast::hash(after_crc)
}

/// Builds a complete PUT entry.
pub fn encode_put(key: &ObjectId, data: &[u8]) -> Vec<u8> {
    let size = (PUT_HEADER_SIZE + data.len()) as u32;
    let mut e = Vec::with_capacity(size as usize);
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&size.to_le_bytes());
    e.push(TAG_PUT);
    e.extend_from_slice(&key.0);
    e.extend_from_slice(data);
    let crc = entry_crc(&e[4..]);
    e[..4].copy_from_slice(&crc.to_le_bytes());
    e
}

pub fn encode_delete(key: &ObjectId) -> [u8; PUT_HEADER_SIZE] {
    let mut e = [0u8; PUT_HEADER_SIZE];
    e[4..8].copy_from_slice(&(PUT_HEADER_SIZE as u32).to_le_bytes());
    e[8] = TAG_DELETE;
    e[9..].copy_from_slice(&key.0);
    let crc = entry_crc(&e[4..]);
    e[..4].copy_from_slice(&crc.to_le_bytes());
    e
}

fn integrity(msg: String) -> RepoError {
    RepoError::Integrity(msg)
}

struct WriteSegment {
    segment: u32,
    file: BufWriter<File>,
    path: PathBuf,
    offset: u64,
}

/// Reading and writing segment files of one repository (borg's `LoggedIO`).
pub struct SegmentIo {
    pub repo: PathBuf,
    pub segments_per_dir: u32,
    pub limit: u64,
    /// Number the next new segment gets.
    pub next_segment: u32,
    write: Option<WriteSegment>,
    read_fds: HashMap<u32, Arc<File>>,
}

/// Signals that the current segment is over its size limit (compaction rolls over on it).
#[derive(Debug)]
pub struct SegmentFull;

impl SegmentIo {
    pub fn new(repo: &Path, limit: u64, segments_per_dir: u32) -> SegmentIo {
        SegmentIo {
            repo: repo.to_path_buf(),
            segments_per_dir,
            limit,
            next_segment: 0,
            write: None,
            read_fds: HashMap::new(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.repo.join("data")
    }

    pub fn segment_filename(&self, segment: u32) -> PathBuf {
        self.data_dir()
            .join((segment / self.segments_per_dir).to_string())
            .join(segment.to_string())
    }

    /// All segment numbers present (numeric names under numeric dirs), ascending.
    pub fn segment_numbers(&self) -> Result<Vec<u32>> {
        let data = self.data_dir();
        let mut out = Vec::new();
        let rd = match fs::read_dir(&data) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RepoError::io(&data, e)),
        };
        for d in rd {
            let d = d.map_err(|e| RepoError::io(&data, e))?;
            let name = d.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let sub = d.path();
            let rd2 = match fs::read_dir(&sub) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(RepoError::io(&sub, e)),
            };
            for f in rd2 {
                let f = f.map_err(|e| RepoError::io(&sub, e))?;
                let n = f.file_name();
                let Some(n) = n.to_str() else { continue };
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Ok(num) = n.parse::<u32>() {
                    out.push(num);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    pub fn latest_segment(&self) -> Result<Option<u32>> {
        Ok(self.segment_numbers()?.last().copied())
    }

    pub fn segment_size(&self, segment: u32) -> Result<u64> {
        let p = self.segment_filename(segment);
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| RepoError::io(&p, e))
    }

    /// A zero-length segment counts as deleted.
    pub fn segment_exists(&self, segment: u32) -> bool {
        fs::metadata(self.segment_filename(segment))
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    }

    pub fn segment_magic(&self, segment: u32) -> Result<[u8; 8]> {
        let p = self.segment_filename(segment);
        let mut f = File::open(&p).map_err(|e| RepoError::io(&p, e))?;
        let mut m = [0u8; 8];
        f.read_exact(&mut m).map_err(|e| RepoError::io(&p, e))?;
        Ok(m)
    }

    /// Committed = ends with the COMMIT constant, parses cleanly, and only COMMITs follow the
    /// first COMMIT.
    pub fn is_committed_segment(&self, segment: u32) -> bool {
        let p = self.segment_filename(segment);
        let Ok(mut f) = File::open(&p) else {
            return false;
        };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            return false;
        };
        if len < (MAGIC.len() + HEADER_SIZE) as u64 {
            return false;
        }
        let mut tail = [0u8; HEADER_SIZE];
        if f.seek(SeekFrom::Start(len - HEADER_SIZE as u64)).is_err()
            || f.read_exact(&mut tail).is_err()
            || tail != COMMIT_ENTRY
        {
            return false;
        }
        let mut seen_commit = false;
        let iter = match self.iter_objects(segment, 0, ReadMode::Verify) {
            Ok(i) => i,
            Err(_) => return false,
        };
        for e in iter {
            match e {
                Err(_) => return false,
                Ok(e) if e.tag == TAG_COMMIT => seen_commit = true,
                Ok(_) if seen_commit => return false,
                Ok(_) => {}
            }
        }
        seen_commit
    }

    /// Highest committed segment, scanning downwards.
    pub fn segments_transaction_id(&self) -> Result<Option<u32>> {
        for seg in self.segment_numbers()?.into_iter().rev() {
            if self.is_committed_segment(seg) {
                return Ok(Some(seg));
            }
        }
        Ok(None)
    }

    /// Deletes every segment newer than `tid` (uncommitted leftovers); next writes start at
    /// `tid + 1`. Returns how many files were removed.
    pub fn cleanup(&mut self, tid: Option<u32>) -> Result<usize> {
        self.close_segment()?;
        let mut count = 0;
        for seg in self.segment_numbers()?.into_iter().rev() {
            if tid.is_some_and(|t| seg <= t) {
                break;
            }
            let p = self.segment_filename(seg);
            atomic::safe_unlink(&p).map_err(|e| RepoError::io(&p, e))?;
            self.read_fds.remove(&seg);
            count += 1;
        }
        self.next_segment = tid.map_or(0, |t| t + 1);
        if count > 0 {
            crate::log::debug(
                "borg.repository",
                &format!("Cleaned up {count} uncommitted segment files (== everything after segment {}).",
                    tid.map_or(-1, |t| t as i64)),
            );
        }
        Ok(count)
    }

    pub fn delete_segment(&mut self, segment: u32) -> Result<()> {
        self.read_fds.remove(&segment);
        let p = self.segment_filename(segment);
        match atomic::safe_unlink(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RepoError::io(&p, e)),
        }
    }

    fn read_fd(&mut self, segment: u32) -> Result<Arc<File>> {
        if let Some(f) = self.read_fds.get(&segment) {
            return Ok(f.clone());
        }
        let p = self.segment_filename(segment);
        let f = File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                integrity(format!(
                    "Segment {segment} not found (file {}), please run borg check",
                    p.display()
                ))
            } else {
                RepoError::io(&p, e)
            }
        })?;
        if self.read_fds.len() >= 64 {
            self.read_fds.clear();
        }
        let f = Arc::new(f);
        self.read_fds.insert(segment, f.clone());
        Ok(f)
    }

    /// Prepares a read of (segment, offset): flushes our own pending writes to that segment and
    /// returns a handle that can be read without holding the repository lock.
    pub fn reader_for(&mut self, segment: u32) -> Result<SegmentReader> {
        if let Some(w) = &mut self.write {
            if w.segment == segment {
                w.file.flush().map_err(|e| RepoError::io(&w.path, e))?;
            }
        }
        Ok(SegmentReader {
            file: self.read_fd(segment)?,
            segment,
        })
    }

    /// Reads the PUT of `key` at (segment, offset): returns its entry size and, if asked, value.
    pub fn read(
        &mut self,
        segment: u32,
        offset: u32,
        key: &ObjectId,
        want_data: bool,
    ) -> Result<(u32, Option<Vec<u8>>)> {
        self.reader_for(segment)?.read_put(offset, key, want_data)
    }

    fn open_write(
        &mut self,
        want_new: bool,
        raise_full: bool,
    ) -> Result<std::result::Result<(), SegmentFull>> {
        if let Some(w) = &self.write {
            if want_new || w.offset > self.limit {
                if raise_full && !want_new {
                    return Ok(Err(SegmentFull));
                }
                self.close_segment()?;
            }
        }
        if self.write.is_none() {
            let seg = self.next_segment;
            if seg > MAX_SEGMENT_NUMBER {
                return Err(integrity("segment number space exhausted".into()));
            }
            let dir = self
                .data_dir()
                .join((seg / self.segments_per_dir).to_string());
            if !dir.exists() {
                fs::create_dir_all(&dir).map_err(|e| RepoError::io(&dir, e))?;
                atomic::sync_dir(&self.data_dir())
                    .map_err(|e| RepoError::io(self.data_dir(), e))?;
            }
            let path = self.segment_filename(seg);
            let f = atomic::create_exclusive(&path).map_err(|e| RepoError::io(&path, e))?;
            let mut file = BufWriter::with_capacity(1 << 20, f);
            file.write_all(MAGIC).map_err(|e| RepoError::io(&path, e))?;
            self.write = Some(WriteSegment {
                segment: seg,
                file,
                path,
                offset: MAGIC.len() as u64,
            });
        }
        Ok(Ok(()))
    }

    fn append(&mut self, bytes: &[&[u8]]) -> Result<(u32, u32)> {
        let w = self.write.as_mut().expect("segment open");
        let off = w.offset;
        for b in bytes {
            w.file.write_all(b).map_err(|e| RepoError::io(&w.path, e))?;
            w.offset += b.len() as u64;
        }
        Ok((w.segment, off as u32))
    }

    /// Appends a PUT; returns (segment, offset). With `raise_full`, reports a full segment
    /// instead of rolling over.
    pub fn write_put(
        &mut self,
        key: &ObjectId,
        data: &[u8],
        raise_full: bool,
    ) -> Result<std::result::Result<(u32, u32), SegmentFull>> {
        let size = PUT_HEADER_SIZE + data.len();
        if size > MAX_OBJECT_SIZE {
            return Err(integrity(format!(
                "More than allowed put data [{} > {}]",
                data.len(),
                MAX_OBJECT_SIZE - PUT_HEADER_SIZE
            )));
        }
        if let Err(full) = self.open_write(*key == ObjectId::MANIFEST, raise_full)? {
            return Ok(Err(full));
        }
        let mut header = [0u8; PUT_HEADER_SIZE];
        header[4..8].copy_from_slice(&(size as u32).to_le_bytes());
        header[8] = TAG_PUT;
        header[9..].copy_from_slice(&key.0);
        let mut h = crc32fast::Hasher::new();
        h.update(&header[4..]);
        h.update(data);
        header[..4].copy_from_slice(&h.finalize().to_le_bytes());
        Ok(Ok(self.append(&[&header, data])?))
    }

    /// Appends a DELETE; returns (segment, entry size).
    pub fn write_delete(
        &mut self,
        key: &ObjectId,
        raise_full: bool,
    ) -> Result<std::result::Result<(u32, u32), SegmentFull>> {
        if let Err(full) = self.open_write(*key == ObjectId::MANIFEST, raise_full)? {
            return Ok(Err(full));
        }
        let e = encode_delete(key);
        let (seg, _) = self.append(&[&e])?;
        Ok(Ok((seg, PUT_HEADER_SIZE as u32)))
    }

    /// Appends a COMMIT and closes the segment. A final commit always gets a fresh segment.
    /// Returns the segment number holding the commit.
    pub fn write_commit(&mut self, intermediate: bool) -> Result<u32> {
        if intermediate {
            if let Some(w) = &mut self.write {
                w.file.flush().map_err(|e| RepoError::io(&w.path, e))?;
                w.file
                    .get_ref()
                    .sync_data()
                    .map_err(|e| RepoError::io(&w.path, e))?;
            }
            self.open_write(false, false)?.expect("no raise_full");
        } else {
            self.open_write(true, false)?.expect("no raise_full");
        }
        let (seg, _) = self.append(&[&COMMIT_ENTRY])?;
        self.close_segment()?;
        Ok(seg)
    }

    /// Flushes, fsyncs and closes the current write segment.
    pub fn close_segment(&mut self) -> Result<()> {
        if let Some(w) = self.write.take() {
            let WriteSegment {
                segment,
                file,
                path,
                ..
            } = w;
            let f = file
                .into_inner()
                .map_err(|e| RepoError::io(&path, e.into_error()))?;
            f.sync_data().map_err(|e| RepoError::io(&path, e))?;
            drop(f);
            if let Some(dir) = path.parent() {
                atomic::sync_dir(dir).map_err(|e| RepoError::io(dir, e))?;
            }
            self.read_fds.remove(&segment);
            self.next_segment = segment + 1;
        }
        Ok(())
    }

    /// Drops an open write segment without syncing (rollback paths; the file is an
    /// uncommitted leftover the next writer cleans up).
    pub fn abandon_write(&mut self) {
        if let Some(w) = self.write.take() {
            let _ = w.file.into_inner();
            self.next_segment = w.segment + 1;
        }
    }

    pub fn current_write_segment(&self) -> Option<u32> {
        self.write.as_ref().map(|w| w.segment)
    }

    /// Iterates the entries of a segment from `offset` (0 = start, checks the magic).
    pub fn iter_objects(&self, segment: u32, offset: u32, mode: ReadMode) -> Result<SegmentIter> {
        let p = self.segment_filename(segment);
        SegmentIter::open(&p, segment, offset, mode)
    }

    /// borg's salvage: rewrite a damaged segment keeping every byte window that parses as a
    /// valid entry (plausible size and tag, matching CRC), sliding one byte on mismatch.
    pub fn recover_segment(&mut self, segment: u32) -> Result<()> {
        self.read_fds.remove(&segment);
        let p = self.segment_filename(segment);
        crate::log::info(
            "borg.repository",
            &format!("attempting to recover {}", p.display()),
        );
        let data = fs::read(&p).map_err(|e| RepoError::io(&p, e))?;
        let mut out = MAGIC.to_vec();
        if data.len() < MAGIC.len() + HEADER_SIZE {
            crate::log::error(
                "borg.repository",
                &format!("Recovering segment {segment}: file too short, leaving only the magic."),
            );
        } else {
            let mut pos = MAGIC.len();
            while pos + HEADER_SIZE <= data.len() {
                let size =
                    u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4")) as usize;
                let tag = data[pos + 8];
                if !(HEADER_SIZE..=MAX_OBJECT_SIZE).contains(&size)
                    || tag > MAX_TAG_ID
                    || pos + size > data.len()
                {
                    pos += 1;
                    continue;
                }
                let crc = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4"));
                if entry_crc(&data[pos + 4..pos + size]) != crc {
                    pos += 1;
                    continue;
                }
                out.extend_from_slice(&data[pos..pos + size]);
                pos += size;
            }
        }
        atomic::save_file(&p, &out).map_err(|e| RepoError::io(&p, e))
    }
}

/// A handle for reading PUTs of one segment outside the repository lock.
pub struct SegmentReader {
    file: Arc<File>,
    pub segment: u32,
}

impl SegmentReader {
    pub fn read_put(
        &self,
        offset: u32,
        key: &ObjectId,
        want_data: bool,
    ) -> Result<(u32, Option<Vec<u8>>)> {
        let seg = self.segment;
        let mut header = [0u8; PUT_HEADER_SIZE];
        let n = read_full_at(&self.file, &mut header, offset as u64).map_err(|e| {
            integrity(format!(
                "Segment entry header read error at segment {seg} offset {offset}: {e}"
            ))
        })?;
        if n < PUT_HEADER_SIZE {
            return Err(integrity(format!(
                "Segment entry header short read [segment {seg}, offset {offset}]: expected {PUT_HEADER_SIZE}, got {n} bytes"
            )));
        }
        let size = u32::from_le_bytes(header[4..8].try_into().expect("4"));
        let tag = header[8];
        if (size as usize) < PUT_HEADER_SIZE || size as usize > MAX_OBJECT_SIZE {
            let what = if size as usize > MAX_OBJECT_SIZE {
                "too big"
            } else {
                "too small"
            };
            return Err(integrity(format!(
                "Invalid segment entry size {size} - {what} [segment {seg}, offset {offset}]"
            )));
        }
        if tag != TAG_PUT {
            return Err(integrity(format!(
                "Invalid segment entry header, did not get acceptable tag [segment {seg}, offset {offset}]"
            )));
        }
        if header[9..] != key.0 {
            return Err(integrity(format!(
                "Invalid segment entry header, is not for wanted id [segment {seg}, offset {offset}]"
            )));
        }
        if !want_data {
            return Ok((size, None));
        }
        let want = size as usize - PUT_HEADER_SIZE;
        let data =
            read_vec_at(&self.file, want, offset as u64 + PUT_HEADER_SIZE as u64).map_err(|e| {
                integrity(format!(
                    "Segment entry data read error [segment {seg}, offset {offset}]: {e}"
                ))
            })?;
        if data.len() < want {
            return Err(integrity(format!(
                "Segment entry data short read [segment {seg}, offset {offset}]: expected {want}, got {} bytes",
                data.len()
            )));
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&header[4..]);
        h.update(&data);
        let crc = u32::from_le_bytes(header[..4].try_into().expect("4"));
        if h.finalize() != crc {
            return Err(integrity(format!(
                "Segment entry checksum mismatch [segment {seg}, offset {offset}]"
            )));
        }
        Ok((size, Some(data)))
    }
}

/// Reads up to `len` bytes at `off` into a new buffer (shorter only at end of file) without
/// zero-filling it first: objects are read once per chunk on every extract and check.
fn read_vec_at(f: &File, len: usize, off: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::io::AsRawFd;
    let mut v: Vec<u8> = Vec::with_capacity(len);
    while v.len() < len {
        let have = v.len();
        let at = off + have as u64;
        let spare = &mut v.spare_capacity_mut()[..len - have];
        // SAFETY: pread writes at most `spare.len()` bytes into the vector's spare capacity;
        // the length then grows by exactly the number of bytes it wrote.
        let r = unsafe {
            libc::pread(
                f.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                at as libc::off_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            break;
        }
        // SAFETY: see above; r <= spare.len().
        unsafe { v.set_len(have + r as usize) };
    }
    Ok(v)
}

fn read_full_at(f: &File, buf: &mut [u8], mut off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Sequential reader over one segment's entries.
pub struct SegmentIter {
    r: BufReader<File>,
    segment: u32,
    offset: u64,
    mode: ReadMode,
    done: bool,
    buf: Vec<u8>,
}

impl SegmentIter {
    fn open(path: &Path, segment: u32, offset: u32, mode: ReadMode) -> Result<SegmentIter> {
        let f = File::open(path).map_err(|e| RepoError::io(path, e))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut off = offset as u64;
        if offset == 0 {
            let mut m = [0u8; 8];
            let n = read_up_to(&mut r, &mut m).map_err(|e| RepoError::io(path, e))?;
            if n != 8 || &m != MAGIC {
                return Err(integrity(format!(
                    "Invalid segment magic [segment {segment}, offset 0]"
                )));
            }
            off = 8;
        } else {
            r.seek(SeekFrom::Start(off))
                .map_err(|e| RepoError::io(path, e))?;
        }
        Ok(SegmentIter {
            r,
            segment,
            offset: off,
            mode,
            done: false,
            buf: Vec::new(),
        })
    }

    fn next_entry(&mut self) -> Result<Option<Entry>> {
        let (seg, off) = (self.segment, self.offset);
        let mut header = [0u8; HEADER_SIZE];
        let n = read_up_to(&mut self.r, &mut header).map_err(|e| {
            integrity(format!(
                "Segment entry header read error [segment {seg}, offset {off}]: {e}"
            ))
        })?;
        if n == 0 {
            return Ok(None);
        }
        if n < HEADER_SIZE {
            return Err(integrity(format!(
                "Segment entry header short read [segment {seg}, offset {off}]: expected {HEADER_SIZE}, got {n} bytes"
            )));
        }
        let crc = u32::from_le_bytes(header[..4].try_into().expect("4"));
        let size = u32::from_le_bytes(header[4..8].try_into().expect("4"));
        let tag = header[8];
        if (size as usize) < HEADER_SIZE || size as usize > MAX_OBJECT_SIZE {
            let what = if size as usize > MAX_OBJECT_SIZE {
                "too big"
            } else {
                "too small"
            };
            return Err(integrity(format!(
                "Invalid segment entry size {size} - {what} [segment {seg}, offset {off}]"
            )));
        }
        let body_len = size as usize - HEADER_SIZE;
        let plausible = match tag {
            TAG_PUT => size as usize >= PUT_HEADER_SIZE,
            TAG_DELETE => size as usize == PUT_HEADER_SIZE,
            TAG_COMMIT => size as usize == HEADER_SIZE,
            _ => false,
        };
        if !plausible {
            return Err(integrity(format!(
                "Invalid segment entry header [segment {seg}, offset {off}]: unknown tag {tag} or bad size {size}"
            )));
        }
        let mut key = ObjectId::default();
        let data = if self.mode == ReadMode::HeadersOnly {
            if tag != TAG_COMMIT {
                let n = read_up_to(&mut self.r, &mut key.0).map_err(|e| {
                    integrity(format!(
                        "Segment entry key read error [segment {seg}, offset {off}]: {e}"
                    ))
                })?;
                if n < 32 {
                    return Err(integrity(format!(
                        "Segment entry key short read [segment {seg}, offset {off}]"
                    )));
                }
            }
            let skip = body_len.saturating_sub(if tag == TAG_COMMIT { 0 } else { 32 });
            self.r
                .seek_relative(skip as i64)
                .map_err(|e| integrity(format!("seek error in segment {seg}: {e}")))?;
            None
        } else {
            // the key, then the value: a PUT's value read with data goes straight into its
            // own buffer (no second copy)
            let key_len = if tag == TAG_COMMIT { 0 } else { 32 };
            let with_data = self.mode == ReadMode::WithData && tag == TAG_PUT;
            let value_len = body_len - key_len;
            let mut value = if with_data {
                // read into spare capacity: no zero fill of memory about to be overwritten
                Vec::with_capacity(value_len)
            } else {
                let mut b = std::mem::take(&mut self.buf);
                b.clear();
                b
            };
            let got = read_up_to(&mut self.r, &mut key.0[..key_len])
                .and_then(|k| {
                    let n = (&mut self.r)
                        .take(value_len as u64)
                        .read_to_end(&mut value)?;
                    Ok(k + n)
                })
                .map_err(|e| {
                    integrity(format!(
                        "Segment entry data read error [segment {seg}, offset {off}]: {e}"
                    ))
                })?;
            if got < body_len {
                return Err(integrity(format!(
                    "Segment entry data short read [segment {seg}, offset {off}]: expected {body_len}, got {got} bytes"
                )));
            }
            let mut h = crc32fast::Hasher::new();
            h.update(&header[4..]);
            h.update(&key.0[..key_len]);
            h.update(&value);
            if h.finalize() != crc {
                return Err(integrity(format!(
                    "Segment entry checksum mismatch [segment {seg}, offset {off}]"
                )));
            }
            if with_data {
                Some(value)
            } else {
                self.buf = value;
                None
            }
        };
        self.offset += size as u64;
        Ok(Some(Entry {
            tag,
            key,
            offset: off as u32,
            size,
            data,
        }))
    }
}

impl Iterator for SegmentIter {
    type Item = Result<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        let key = ObjectId(std::array::from_fn(|i| i as u8));
        let e = encode_put(&key, b"hello world");
        assert_eq!(&e[..9], &[0xe1, 0x6e, 0x86, 0x28, 0x34, 0, 0, 0, 0]);
        let d = encode_delete(&ObjectId::MANIFEST);
        assert_eq!(&d[..9], &[0x8c, 0xec, 0x0d, 0x8a, 0x29, 0, 0, 0, 1]);
        assert_eq!(entry_crc(&COMMIT_ENTRY[4..]), 0x253cf440);
    }

    #[test]
    fn write_read_iterate_and_commit() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("data")).unwrap();
        let mut io = SegmentIo::new(d.path(), 1000, 1000);
        let k1 = ObjectId([1; 32]);
        let (s, o) = io.write_put(&k1, b"abc", false).unwrap().unwrap();
        assert_eq!((s, o), (0, 8));
        let (s2, _) = io.write_delete(&k1, false).unwrap().unwrap();
        assert_eq!(s2, 0);
        assert_eq!(io.read(0, 8, &k1, true).unwrap().1.unwrap(), b"abc");
        let t = io.write_commit(false).unwrap();
        assert_eq!(t, 1, "final commit goes to a fresh segment");
        assert_eq!(fs::read(io.segment_filename(1)).unwrap().len(), 17);
        assert!(io.is_committed_segment(1));
        assert!(!io.is_committed_segment(0));
        assert_eq!(io.segments_transaction_id().unwrap(), Some(1));
        let tags: Vec<u8> = io
            .iter_objects(0, 0, ReadMode::Verify)
            .unwrap()
            .map(|e| e.unwrap().tag)
            .collect();
        assert_eq!(tags, vec![TAG_PUT, TAG_DELETE]);
        // the manifest always starts a fresh segment
        let (s3, _) = io
            .write_put(&ObjectId::MANIFEST, b"m", false)
            .unwrap()
            .unwrap();
        assert_eq!(s3, 2);
        io.close_segment().unwrap();
        assert_eq!(io.cleanup(Some(1)).unwrap(), 1);
        assert_eq!(io.next_segment, 2);
    }

    #[test]
    fn corruption_is_detected_and_salvaged() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("data")).unwrap();
        let mut io = SegmentIo::new(d.path(), 1 << 20, 1000);
        for i in 0..3u8 {
            io.write_put(&ObjectId([i + 1; 32]), &[i; 100], false)
                .unwrap()
                .unwrap();
        }
        io.write_commit(true).unwrap();
        let p = io.segment_filename(0);
        let mut bytes = fs::read(&p).unwrap();
        bytes[8 + 141 + 60] ^= 0xff; // inside the second entry's value
        fs::write(&p, &bytes).unwrap();
        let errs: Vec<_> = io
            .iter_objects(0, 0, ReadMode::Verify)
            .unwrap()
            .filter_map(|e| e.err())
            .collect();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("checksum mismatch"));
        assert!(!io.is_committed_segment(0));
        io.recover_segment(0).unwrap();
        let ok: Vec<_> = io
            .iter_objects(0, 0, ReadMode::WithData)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(ok.len(), 3, "entries 1 and 3 plus the commit survive");
        assert_eq!(ok[1].key, ObjectId([3; 32]));
        assert!(io.is_committed_segment(0));
    }
}
