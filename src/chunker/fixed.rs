//! Fixed-size chunking over a data/hole map (`--chunker-params fixed,BLOCK[,HEADER]` with
//! `--sparse`, spec 8.5).
//!
//! Without `--sparse` the whole file is one data range and [`fixed_chunks`] gives the header
//! chunk and then `BLOCK`-sized chunks (the same cuts as [`super::Chunker::next_cut`]). With
//! `--sparse`, [`sparse_map`] asks the filesystem (`lseek` `SEEK_DATA` / `SEEK_HOLE`) where the
//! holes are; block alignment restarts at every range boundary and at the header boundary, and
//! hole chunks are described but never read.

use std::fs::File;
use std::io;

/// What a chunk descriptor covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// File data: read `len` bytes at `offset`.
    Data,
    /// A hole: `len` zero bytes that need not be read.
    Hole,
}

/// One chunk of a file: `len` bytes at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkDesc {
    pub offset: u64,
    pub len: u64,
    pub kind: ChunkKind,
}

/// A range of a file that is all data or all hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileRange {
    pub offset: u64,
    pub len: u64,
    pub is_data: bool,
}

/// The map to use without `--sparse`: one data range over the whole file (empty for an empty
/// file).
pub fn dense_map(file_len: u64) -> Vec<FileRange> {
    if file_len == 0 {
        Vec::new()
    } else {
        vec![FileRange {
            offset: 0,
            len: file_len,
            is_data: true,
        }]
    }
}

/// The data/hole map of `file` (its current length), built with `lseek(SEEK_DATA/SEEK_HOLE)`.
/// Where that is unsupported (not Linux, or the filesystem refuses) the whole file is one data
/// range. Adjacent ranges alternate between data and hole; their lengths sum to the file
/// length. The file position is restored afterwards.
pub fn sparse_map(file: &File) -> io::Result<Vec<FileRange>> {
    let len = file.metadata()?.len();
    #[cfg(target_os = "linux")]
    {
        match linux::seek_map(file, len)? {
            Some(map) => Ok(map),
            None => Ok(dense_map(len)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(dense_map(len))
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::FileRange;
    use std::fs::File;
    use std::io;
    use std::os::unix::io::AsRawFd;

    fn seek(fd: i32, off: u64, whence: i32) -> io::Result<Option<u64>> {
        // SAFETY: plain lseek on a descriptor owned by a live `File`.
        let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
        if r >= 0 {
            return Ok(Some(r as u64));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// `Ok(None)` if the filesystem does not support SEEK_DATA/SEEK_HOLE.
    pub(super) fn seek_map(file: &File, len: u64) -> io::Result<Option<Vec<FileRange>>> {
        let fd = file.as_raw_fd();
        // SAFETY: as above.
        let saved = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        let result = build(fd, len);
        if saved >= 0 {
            // SAFETY: as above.
            unsafe { libc::lseek(fd, saved, libc::SEEK_SET) };
        }
        match result {
            Ok(map) => Ok(Some(map)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ESPIPE)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn build(fd: i32, len: u64) -> io::Result<Vec<FileRange>> {
        let mut map: Vec<FileRange> = Vec::new();
        let mut push = |offset: u64, end: u64, is_data: bool| {
            if end > offset {
                match map.last_mut() {
                    Some(last) if last.is_data == is_data && last.offset + last.len == offset => {
                        last.len = end - last.offset
                    }
                    _ => map.push(FileRange {
                        offset,
                        len: end - offset,
                        is_data,
                    }),
                }
            }
        };
        let mut cur = 0u64;
        while cur < len {
            let data = match seek(fd, cur, libc::SEEK_DATA)? {
                Some(d) => d.min(len),
                None => len, // no data after cur: hole to the end
            };
            push(cur, data, false);
            if data >= len {
                break;
            }
            let hole = seek(fd, data, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
            if hole <= data {
                // Should not happen; treat the rest as data rather than loop forever.
                push(data, len, true);
                break;
            }
            push(data, hole, true);
            cur = hole;
        }
        Ok(map)
    }
}

/// Fixed-size chunk descriptors over `map`: the first `header_size` bytes (split where the map
/// splits them) form the header chunk(s); after that, chunks of `block_size` bytes, alignment
/// restarting at every range boundary; the last chunk of a range may be shorter. Holes give
/// [`ChunkKind::Hole`] descriptors. `block_size` must be ≥ 1.
pub fn fixed_chunks(block_size: u64, header_size: u64, map: &[FileRange]) -> Vec<ChunkDesc> {
    assert!(
        block_size >= 1,
        "fixed chunker block size must be at least 1"
    );
    let mut out = Vec::new();
    for r in map {
        let kind = if r.is_data {
            ChunkKind::Data
        } else {
            ChunkKind::Hole
        };
        let end = r.offset + r.len;
        let mut off = r.offset;
        while off < end {
            // Inside the header: up to the header boundary; after it: one block.
            let n = if off < header_size {
                header_size.min(end) - off
            } else {
                block_size.min(end - off)
            };
            out.push(ChunkDesc {
                offset: off,
                len: n,
                kind,
            });
            off += n;
        }
    }
    out
}
