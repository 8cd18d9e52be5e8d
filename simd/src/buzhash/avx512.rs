//! AVX-512 (F + BW + VBMI): 64 hash lanes, byte-sliced.
//!
//! Gathers are slow on some CPUs (AMD Zen 4: about one element per cycle), so this kernel does
//! its table lookups in registers instead. The 32-bit hash states of 64 lanes are kept as four
//! byte planes (`h[k]` holds byte `k` of every lane's hash, one lane per byte of a `zmm`). A
//! 256-entry byte table is four `zmm`s; `vpermi2b` looks up 128 entries at once, so a lookup for
//! 64 lanes is two `vpermi2b` and a blend on the index's top bit, per plane. The rotation by one
//! bit is a byte add plus the top bit of the neighbouring plane; the mask test ORs the masked
//! planes and tests for zero bytes.
//!
//! Lane `j` scans stripe `j` of a round; its data bytes arrive by loading 64 bytes of each lane
//! and transposing the 64×64 byte block (`vpermb` within registers, `vpermt2q` across them), so
//! that vector `t` holds byte `t` of every lane. Each transposed vector is kept in a ring of
//! `W + 64` slots: it enters the windows as an "in" byte and is read back `W` steps later as
//! the "out" byte, so only one stream is transposed. The 64 row streams are too many for the
//! hardware prefetchers, so rows are prefetched explicitly.
//!
//! Masks that hit too often for 64 lanes to pay off fall back to the scalar lane kernel.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{drive, scalar, Plan, Scanner};

const LANES: usize = 64;

/// How far ahead (bytes) each lane's data is prefetched.
const PREFETCH: usize = 1024;

pub(super) fn find(
    s: &Scanner,
    data: &[u8],
    range: Range<usize>,
    stripe: Option<usize>,
) -> Option<usize> {
    let plan = Plan::new(LANES, s.window, s.mask, 64, 64).with_stripe(stripe);
    if plan.stripe == 0 {
        return scalar::find(s, data, range, stripe);
    }
    let planes = Planes::new(s);
    let mut ring: Vec<__m512i> = Vec::new();
    drive(
        plan,
        s.window,
        data.len(),
        range,
        // SAFETY: AVX-512 F/BW/VBMI availability was checked by `find_with`; `drive` keeps every
        // read of the round (windows + 64 bytes of slack) inside `data`.
        |start, stripe| unsafe { round(s, &planes, &mut ring, data.as_ptr(), start, stripe) },
        |r| scalar::find(s, data, r, None),
    )
}

/// Byte planes of `T` and `rotl(T, W)`: `t[k][x] = (T[x] >> 8k) as u8`.
#[repr(C, align(64))]
struct Planes {
    t: [[u8; 256]; 4],
    r: [[u8; 256]; 4],
}

impl Planes {
    fn new(s: &Scanner) -> Box<Planes> {
        let mut p = Box::new(Planes {
            t: [[0; 256]; 4],
            r: [[0; 256]; 4],
        });
        for x in 0..256 {
            for k in 0..4 {
                p.t[k][x] = (s.t[x] >> (8 * k)) as u8;
                p.r[k][x] = (s.r[x] >> (8 * k)) as u8;
            }
        }
        p
    }
}

#[inline(always)]
unsafe fn load_table(p: &[u8; 256]) -> [__m512i; 4] {
    let q = p.as_ptr() as *const __m512i;
    [
        _mm512_load_si512(q),
        _mm512_load_si512(q.add(1)),
        _mm512_load_si512(q.add(2)),
        _mm512_load_si512(q.add(3)),
    ]
}

/// `table[x]` for every byte of `x`; `top` = the top bits of `x` (`vpmovb2m`).
#[inline(always)]
unsafe fn lookup(q: &[__m512i; 4], x: __m512i, top: __mmask64) -> __m512i {
    let lo = _mm512_permutex2var_epi8(q[0], x, q[1]);
    let hi = _mm512_permutex2var_epi8(q[2], x, q[3]);
    _mm512_mask_blend_epi8(top, lo, hi)
}

/// 8×8 transpose of qwords in registers: `out[c].q[r] = a[r].q[c]`.
#[inline(always)]
unsafe fn transpose_q8(a: &mut [__m512i; 8]) {
    let mut x = [_mm512_setzero_si512(); 8];
    for r in (0..8).step_by(2) {
        x[r] = _mm512_unpacklo_epi64(a[r], a[r + 1]);
        x[r + 1] = _mm512_unpackhi_epi64(a[r], a[r + 1]);
    }
    let ia = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    let ib = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    let mut y = [_mm512_setzero_si512(); 8];
    for g in [0usize, 4] {
        y[g] = _mm512_permutex2var_epi64(x[g], ia, x[g + 2]);
        y[g + 2] = _mm512_permutex2var_epi64(x[g], ib, x[g + 2]);
        y[g + 1] = _mm512_permutex2var_epi64(x[g + 1], ia, x[g + 3]);
        y[g + 3] = _mm512_permutex2var_epi64(x[g + 1], ib, x[g + 3]);
    }
    let lo = _mm512_setr_epi64(0, 1, 2, 3, 8, 9, 10, 11);
    let hi = _mm512_setr_epi64(4, 5, 6, 7, 12, 13, 14, 15);
    for c in 0..4 {
        a[c] = _mm512_permutex2var_epi64(y[c], lo, y[c + 4]);
        a[c + 4] = _mm512_permutex2var_epi64(y[c], hi, y[c + 4]);
    }
}

/// Byte (8a + b) ↔ byte (8b + a) within a register (a `vpermb` control).
#[inline(always)]
unsafe fn byte_transpose_ctl() -> __m512i {
    let mut pa = [0u8; 64];
    for (i, e) in pa.iter_mut().enumerate() {
        *e = ((i % 8) * 8 + i / 8) as u8;
    }
    _mm512_loadu_si512(pa.as_ptr() as *const _)
}

/// Load 64 bytes at `p + j*stripe` for every lane `j` and transpose the 64×64 block: `out(t, v)`
/// receives, for step `t`, the vector whose byte `j` is lane `j`'s byte `t`.
///
/// Row j = (jh, jl), column t = (th, tl), each 3 bits. Pass 1 (per jh): `vpermb` (qword tl,
/// byte th), qword transpose across jl, `vpermb` (qword th, byte jl). Pass 2 (per tl): qword
/// transpose across jh; register (th, tl) then holds qword jh, byte jl, i.e. byte j.
#[inline(always)]
unsafe fn load_transpose(
    mid: &mut [__m512i; 64],
    pa: __m512i,
    p: *const u8,
    stripe: usize,
    mut out: impl FnMut(usize, __m512i),
) {
    for g in 0..8 {
        let mut a: [__m512i; 8] = std::array::from_fn(|i| {
            let row = p.add((8 * g + i) * stripe);
            // 64 lanes are too many streams for the hardware prefetchers.
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(PREFETCH) as *const i8);
            _mm512_permutexvar_epi8(pa, _mm512_loadu_si512(row as *const _))
        });
        transpose_q8(&mut a);
        for (tl, v) in a.iter().enumerate() {
            mid[8 * g + tl] = _mm512_permutexvar_epi8(pa, *v);
        }
    }
    for tl in 0..8 {
        let mut a: [__m512i; 8] = std::array::from_fn(|jh| mid[8 * jh + tl]);
        transpose_q8(&mut a);
        for (th, v) in a.iter().enumerate() {
            out(8 * th + tl, *v);
        }
    }
}

/// One rolling step for all lanes: `h = rotl(h, 1) ^ R[out] ^ T[in]` (pass `None` for `out`
/// during the warm-up, where only `T[in]` is added).
#[inline(always)]
unsafe fn step(
    h: &mut [__m512i; 4],
    tt: &[[__m512i; 4]; 4],
    rt: &[[__m512i; 4]; 4],
    inp: __m512i,
    out: Option<__m512i>,
) {
    let one = _mm512_set1_epi8(1);
    let ti = _mm512_movepi8_mask(inp);
    let carry: [__m512i; 4] = std::array::from_fn(|k| _mm512_srli_epi16::<7>(h[(k + 3) % 4]));
    match out {
        Some(o) => {
            let to = _mm512_movepi8_mask(o);
            for k in 0..4 {
                let sh =
                    _mm512_ternarylogic_epi32::<0x6A>(carry[k], one, _mm512_add_epi8(h[k], h[k]));
                h[k] = _mm512_ternarylogic_epi32::<0x96>(
                    sh,
                    lookup(&tt[k], inp, ti),
                    lookup(&rt[k], o, to),
                );
            }
        }
        None => {
            for k in 0..4 {
                let sh =
                    _mm512_ternarylogic_epi32::<0x6A>(carry[k], one, _mm512_add_epi8(h[k], h[k]));
                h[k] = _mm512_xor_si512(sh, lookup(&tt[k], inp, ti));
            }
        }
    }
}

/// Lanes whose masked hash is zero.
#[inline(always)]
unsafe fn hits(h: &[__m512i; 4], m: &[__m512i; 4]) -> u64 {
    let mut a = _mm512_and_si512(h[0], m[0]);
    for k in 1..4 {
        a = _mm512_ternarylogic_epi32::<0xF8>(a, h[k], m[k]);
    }
    _mm512_testn_epi8_mask(a, a)
}

/// # Safety
/// AVX-512 F/BW/VBMI must be available; `stripe` a positive multiple of 64; `data` valid for
/// `start + 64*stripe - 1 + W + 64` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn round(
    s: &Scanner,
    planes: &Planes,
    ring: &mut Vec<__m512i>,
    data: *const u8,
    start: usize,
    stripe: usize,
) -> Option<usize> {
    let w = s.window;
    let base = data.add(start);
    let tt: [[__m512i; 4]; 4] = std::array::from_fn(|k| load_table(&planes.t[k]));
    let rt: [[__m512i; 4]; 4] = std::array::from_fn(|k| load_table(&planes.r[k]));
    let m: [__m512i; 4] = std::array::from_fn(|k| _mm512_set1_epi8((s.mask >> (8 * k)) as i8));
    let mut h = [_mm512_setzero_si512(); 4];
    let pa = byte_transpose_ctl();
    let mut mid = [_mm512_setzero_si512(); 64];
    // Transposed step vectors by position within the stripe, `ring[pos % rs]`: written when a
    // position first enters the windows (as an "in" byte), read again W steps later as the
    // "out" byte. `rs >= W + 64` keeps a block of writes clear of the block being read.
    let rs = (w + 64).div_ceil(64) * 64;
    if ring.len() < rs {
        ring.resize(rs, _mm512_setzero_si512());
    }
    let rp = ring.as_mut_ptr();
    let slot = |pos: usize| if pos >= rs { pos % rs } else { pos };

    // Warm-up: the first window of every lane.
    let mut i0 = 0;
    while i0 < w {
        let n = (w - i0).min(64);
        let mut blk = [_mm512_setzero_si512(); 64];
        load_transpose(&mut mid, pa, base.add(i0), stripe, |t, v| blk[t] = v);
        for (t, v) in blk.iter().enumerate() {
            *rp.add(slot(i0 + t)) = *v;
        }
        for v in blk.iter().take(n) {
            step(&mut h, &tt, &rt, *v, None);
        }
        i0 += 64;
    }

    let mut first = [usize::MAX; LANES];
    let b = hits(&h, &m);
    if b != 0 && record(&mut first, b, 0) {
        return Some(start);
    }
    let mut t0 = 0;
    while t0 < stripe {
        // "In" bytes of steps t0 .. t0+64 are positions t0+W .. t0+W+64.
        let pin = t0 + w;
        let s0 = pin % rs;
        load_transpose(&mut mid, pa, base.add(pin), stripe, |t, v| {
            let mut k = s0 + t;
            if k >= rs {
                k -= rs;
            }
            *rp.add(k) = v;
        });
        let mut so = t0 % rs;
        for t in 0..64 {
            let mut ki = s0 + t;
            if ki >= rs {
                ki -= rs;
            }
            let vin = *rp.add(ki);
            let vout = *rp.add(so);
            so += 1;
            if so == rs {
                so = 0;
            }
            step(&mut h, &tt, &rt, vin, Some(vout));
            let b = hits(&h, &m);
            let st = t0 + t + 1;
            if b != 0 && st < stripe && record(&mut first, b, st) {
                return Some(start + st);
            }
        }
        t0 += 64;
    }
    (1..LANES)
        .find(|&j| first[j] != usize::MAX)
        .map(|j| start + j * stripe + first[j])
}

/// Record first hits; `true` if lane 0 hit (then the round's answer is known).
#[cold]
#[inline(never)]
fn record(first: &mut [usize; LANES], bits: u64, step: usize) -> bool {
    for (j, f) in first.iter_mut().enumerate() {
        if bits & (1 << j) != 0 && *f == usize::MAX {
            *f = step;
        }
    }
    bits & 1 != 0
}
