//! Content-defined (buzhash) and fixed-size chunking over whole buffers.
//!
//! * [`ChunkerParams`] — `--chunker-params` text and archive forms.
//! * [`Chunker`] — cut decisions over a buffer ([`Chunker::next_cut`]), an iterator over a
//!   complete buffer ([`Chunker::chunks`]) and a bounded-memory adapter over
//!   [`std::io::Read`] ([`Chunker::reader`]). All give the same boundaries (spec 8.4/8.5).
//! * [`fixed`] — fixed-size chunking with a sparse-file (data/hole) map for `--sparse`.
//! * [`is_all_zero`] — the "allocated zeros" test every chunk goes through (spec 8.6).
//!
//! The buzhash scan itself lives in `rborg_simd::buzhash` (vectorised / multi-lane kernels);
//! this module only implements borg's boundary rules on top of it.

pub mod fixed;
mod params;

use std::io::{self, Read};

use rborg_simd::buzhash::{Scanner, Table};
use rborg_simd::Backend;

pub use fixed::{ChunkDesc, ChunkKind, FileRange};
pub use params::{ChunkerParams, ParamsError, MAX_DATA_SIZE};

/// borg's buzhash base table (spec 8.2); the key's chunk seed is xored into every entry.
pub const TABLE_BASE: [u32; 256] = [
    0xe7f831ec, 0xf4026465, 0xafb50cae, 0x6d553c7a, 0xd639efe3, 0x19a7b895, 0x9aba5b21, 0x5417d6d4,
    0x35fd2b84, 0xd1f6a159, 0x3f8e323f, 0xb419551c, 0xf444cebf, 0x21dc3b80, 0xde8d1e36, 0x84a32436,
    0xbeb35a9d, 0xa36f24aa, 0xa4e60186, 0x98d18ffe, 0x3f042f9e, 0xdb228bcd, 0x096474b7, 0x5c20c2f7,
    0xf9eec872, 0xe8625275, 0xb9d38f80, 0xd48eb716, 0x22a950b4, 0x3cbaaeaa, 0xc37cddd3, 0x8fea6f6a,
    0x1d55d526, 0x7fd6d3b3, 0xdaa072ee, 0x4345ac40, 0xa077c642, 0x8f2bd45b, 0x28509110, 0x55557613,
    0xffc17311, 0xd961ffef, 0xe532c287, 0xaab95937, 0x46d38365, 0xb065c703, 0xf2d91d0f, 0x92cd4bb0,
    0x4007c712, 0xf35509dd, 0x505b2f69, 0x557ead81, 0x310f4563, 0xbddc5be8, 0x9760f38c, 0x701e0205,
    0x00157244, 0x14912826, 0xdc4ca32b, 0x67b196de, 0x5db292e8, 0x8c1b406b, 0x01f34075, 0xfa2520f7,
    0x73bc37ab, 0x1e18bc30, 0xfe2c6cb3, 0x20c522d0, 0x5639e3db, 0x942bda35, 0x899af9d1, 0xced44035,
    0x98cc025b, 0x255f5771, 0x70fefa24, 0xe928fa4d, 0x2c030405, 0xb9325590, 0x20cb63bd, 0xa166305d,
    0x80e52c0a, 0xa8fafe2f, 0x1ad13f7d, 0xcfaf3685, 0x6c83a199, 0x7d26718a, 0xde5dfcd9, 0x79cf7355,
    0x8979d7fb, 0xebf8c55e, 0xebe408e4, 0xcd2affba, 0xe483be6e, 0xe239d6de, 0x5dc1e9e0, 0x0473931f,
    0x851b097c, 0xac5db249, 0x09c0f9f2, 0xd8d2f134, 0xe6f38e41, 0xb1c71bf1, 0x52b6e4db, 0x07224424,
    0x6cf73e85, 0x4f25d89c, 0x782a7d74, 0x10a68dcd, 0x3a868189, 0xd570d2dc, 0x69630745, 0x9542ed86,
    0x331cd6b2, 0xa84b5b28, 0x07879c9d, 0x38372f64, 0x7185db11, 0x25ba7c83, 0x01061523, 0xe6792f9f,
    0xe5df07d1, 0x4321b47f, 0x7d2469d8, 0x1a3a4f90, 0x48be29a3, 0x669071af, 0x8ec8dd31, 0x0810bfbf,
    0x813a06b4, 0x68538345, 0x65865ddc, 0x43a71b8e, 0x78619a56, 0x5a34451d, 0x5bdaa3ed, 0x71edc7e9,
    0x17ac9a20, 0x78d10bfa, 0x6c1e7f35, 0xd51839d9, 0x240cbc51, 0x33513cc1, 0xd2b4f795, 0xccaa8186,
    0x0babe682, 0xa33cf164, 0x18c643ea, 0xc1ca105f, 0x9959147a, 0x6d3d94de, 0x0b654fbe, 0xed902ca0,
    0x7d835cb5, 0x99ba1509, 0x6445c922, 0x495e76c2, 0xf07194bc, 0xa1631d7e, 0x677076a5, 0x89fffe35,
    0x1a49bcf3, 0x8e6c948a, 0x0144c917, 0x8d93aea1, 0x16f87ddf, 0xc8f25d49, 0x1fb11297, 0x27e750cd,
    0x2f422da1, 0xdee89a77, 0x1534c643, 0x457b7b8b, 0xaf172f7a, 0x6b9b09d6, 0x33573f7f, 0xf14e15c4,
    0x526467d5, 0xaf488241, 0x87c3ee0d, 0x33be490c, 0x95aa6e52, 0x43ec242e, 0xd77de99b, 0xd018334f,
    0x5b78d407, 0x498eb66b, 0xb1279fa8, 0xb38b0ea6, 0x90718376, 0xe325dee2, 0x8e2f2cba, 0xcaa5bdec,
    0x9d652c56, 0xad68f5cb, 0xa77591af, 0x88e37ee8, 0xf8faa221, 0xfcbbbe47, 0x4f407786, 0xaf393889,
    0xf444a1d9, 0x15ae1a2f, 0x40aa7097, 0x6f9486ac, 0x29d232a3, 0xe47609e9, 0xe8b631ff, 0xba8565f4,
    0x11288749, 0x46c9a838, 0xeb1b7cd8, 0xf516bbb1, 0xfb74fda0, 0x010996e6, 0x4c994653, 0x1d889512,
    0x53dcd9a3, 0xdd074697, 0x1e78e17c, 0x637c98bf, 0x930bb219, 0xcf7f75b0, 0xcb9355fb, 0x9e623009,
    0xe466d82c, 0x28f968d3, 0xfeb385d9, 0x238e026c, 0xb8ed0560, 0x0c6a027a, 0x3d6fec4b, 0xbb4b2ec2,
    0xe715031c, 0xeded011d, 0xcdc4d3b9, 0xc456fc96, 0xdd0eea20, 0xb3df8ec9, 0x12351993, 0xd9cbb01c,
    0x603147a2, 0xcf37d17d, 0xf7fcd9dc, 0xd8556fa3, 0x104c8131, 0x13152774, 0xb4715811, 0x6a72c2c9,
    0xc5ae37bb, 0xa76ce12a, 0x8150d8f3, 0x2ec29218, 0xa35f0984, 0x48c0647e, 0x0b5ff98c, 0x71893f7b,
];

/// The seeded buzhash table: `TABLE_BASE[i] ^ (seed as u32)` (spec 8.2).
pub fn buzhash_table(seed: i32) -> Table {
    Table::with_xor(&TABLE_BASE, seed as u32)
}

/// Whether a chunk is all zeros (borg marks such chunks "allocated zeros"; spec 8.6).
#[inline]
pub fn is_all_zero(chunk: &[u8]) -> bool {
    rborg_simd::zero::is_zero(chunk)
}

#[derive(Clone, Debug)]
enum Kind {
    Buzhash {
        min: usize,
        max: usize,
        window: usize,
        scanner: Box<Scanner>,
    },
    Fixed {
        block: usize,
        header: usize,
    },
}

/// A chunker for one set of parameters and one chunk seed. Stateless between files: every file
/// (or buffer) is chunked from its own offset 0.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    kind: Kind,
    backend: Backend,
}

impl Chunker {
    /// A chunker for `params` with the key's `chunk_seed` (0 in `none` mode), using the
    /// automatic scan backend (`rborg_simd::buzhash::auto_backend`, `RBORG_SIMD`).
    pub fn new(params: ChunkerParams, seed: i32) -> Result<Chunker, ParamsError> {
        Chunker::with_backend(params, seed, rborg_simd::buzhash::auto_backend())
    }

    /// Like [`Chunker::new`] with an explicit scan backend (panics later if it is unavailable).
    pub fn with_backend(
        params: ChunkerParams,
        seed: i32,
        backend: Backend,
    ) -> Result<Chunker, ParamsError> {
        params.check_usable()?;
        let kind = match params {
            ChunkerParams::Buzhash {
                min_exp,
                max_exp,
                mask_bits,
                window,
            } => {
                let mask = if mask_bits >= 32 {
                    u32::MAX
                } else {
                    (1u32 << mask_bits) - 1
                };
                Kind::Buzhash {
                    min: 1 << min_exp,
                    max: 1 << max_exp,
                    window: window as usize,
                    scanner: Box::new(Scanner::new(&buzhash_table(seed), window as usize, mask)),
                }
            }
            ChunkerParams::Fixed {
                block_size,
                header_size,
            } => Kind::Fixed {
                block: block_size as usize,
                header: header_size as usize,
            },
        };
        Ok(Chunker {
            params,
            kind,
            backend,
        })
    }

    /// The parameters.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The scan backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The largest chunk this chunker produces (also how much look-ahead a cut decision needs).
    pub fn max_chunk_size(&self) -> usize {
        self.params.max_chunk_size()
    }

    /// Length of the chunk starting at `data[0]`, or `None` if that needs more data.
    ///
    /// `data` starts at a chunk boundary; `offset` is its position in the file (only the fixed
    /// chunker's header depends on it); `at_eof` says `data` runs to the end of the file. A cut
    /// depends only on the next [`Chunker::max_chunk_size`] bytes, so with at least that many
    /// bytes the answer never is `None`. At end of file with `data` empty the answer is `None`
    /// (no more chunks); otherwise it is in `1..=data.len()`.
    pub fn next_cut(&self, data: &[u8], offset: u64, at_eof: bool) -> Option<usize> {
        match &self.kind {
            Kind::Buzhash {
                min,
                max,
                window,
                scanner,
            } => {
                let (min, max, w) = (*min, *max, *window);
                // E: the hard end of this chunk (spec 8.4).
                let e = if data.len() >= max {
                    max
                } else if at_eof {
                    if data.is_empty() {
                        return None;
                    }
                    if data.len() < min + w + 1 {
                        return Some(data.len());
                    }
                    data.len()
                } else {
                    return None;
                };
                // Candidate window starts: min ..= e - w - 1 (a window ending exactly at e is
                // ignored); check_usable guarantees e >= min + w + 1, so the range is non-empty.
                Some(
                    scanner
                        .find_with(self.backend, &data[..e], min..e - w)
                        .unwrap_or(e),
                )
            }
            Kind::Fixed { block, header } => {
                let want = if (offset as u128) < *header as u128 {
                    *header - offset as usize
                } else {
                    *block
                };
                if data.len() >= want {
                    Some(want)
                } else if at_eof && !data.is_empty() {
                    Some(data.len())
                } else {
                    None
                }
            }
        }
    }

    /// The chunks of a complete buffer (e.g. a memory-mapped file), in order.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> Chunks<'a> {
        Chunks {
            chunker: self,
            data,
            pos: 0,
        }
    }

    /// The cut positions (chunk lengths) of a complete buffer.
    pub fn chunk_lengths(&self, data: &[u8]) -> Vec<usize> {
        self.chunks(data).map(|c| c.len()).collect()
    }

    /// Chunk a byte stream (stdin, a pipe, a file read without mmap) with bounded memory:
    /// one maximal chunk plus 1 MiB of read-ahead. Boundaries equal [`Chunker::chunks`] over
    /// the whole stream, whatever sizes the reads return.
    pub fn reader<R: Read>(&self, inner: R) -> ChunkReader<'_, R> {
        self.reader_with(inner, Vec::new())
    }

    /// [`Chunker::reader`] reading into `buf` (any contents; given back by
    /// [`ChunkReader::into_buffer`]): a buffer reused from file to file is neither mapped
    /// nor zeroed again.
    pub fn reader_with<R: Read>(&self, inner: R, mut buf: Vec<u8>) -> ChunkReader<'_, R> {
        let max = self.max_chunk_size();
        let cap = max.max(4096) + (1 << 20).min(max.max(4096));
        buf.truncate(cap);
        ChunkReader {
            chunker: self,
            inner,
            buf,
            cap,
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            failed: false,
        }
    }
}

/// Iterator over the chunks of a complete buffer (see [`Chunker::chunks`]).
#[derive(Clone, Debug)]
pub struct Chunks<'a> {
    chunker: &'a Chunker,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Chunks<'a> {
    /// Offset of the next chunk in the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let n = self.chunker.next_cut(rest, self.pos as u64, true)?;
        self.pos += n;
        Some(&rest[..n])
    }
}

/// Streaming chunker over a reader (see [`Chunker::reader`]); yields owned chunks.
#[derive(Debug)]
pub struct ChunkReader<'c, R> {
    chunker: &'c Chunker,
    inner: R,
    buf: Vec<u8>,
    cap: usize,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
    failed: bool,
}

impl<'c, R: Read> ChunkReader<'c, R> {
    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The read buffer, for reuse by [`Chunker::reader_with`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Offset in the stream of the next chunk.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Read until the buffer is full or the stream ends.
    fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() < self.cap {
            self.buf.resize(self.cap, 0);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.cap {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<'c, R: Read> ChunkReader<'c, R> {
    /// The next chunk, borrowed from the reader's buffer (valid until the next call): lets a
    /// caller that stores the chunk right away skip the copy the iterator makes.
    pub fn next_chunk(&mut self) -> Option<io::Result<&[u8]>> {
        if self.failed {
            return None;
        }
        loop {
            let data = &self.buf[self.start..self.end];
            if let Some(n) = self.chunker.next_cut(data, self.offset, self.eof) {
                let from = self.start;
                self.start += n;
                self.offset += n as u64;
                return Some(Ok(&self.buf[from..from + n]));
            }
            if self.eof {
                return None;
            }
            if let Err(e) = self.fill() {
                self.failed = true;
                return Some(Err(e));
            }
        }
    }
}

impl<'c, R: Read> Iterator for ChunkReader<'c, R> {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        self.next_chunk().map(|r| r.map(|c| c.to_vec()))
    }
}

#[cfg(test)]
mod tests;
