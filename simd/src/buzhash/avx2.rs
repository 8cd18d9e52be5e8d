//! AVX2: 8 hash lanes in one `ymm`, table lookups with `vpgatherdd`.
//!
//! Lane `j` scans stripe `j` of a round. The data bytes of all lanes are fetched four steps at a
//! time with one dword gather per stream (out = window start, in = window end), split into bytes
//! with `vpshufb`, and looked up in `T` / `rotl(T, W)` with two more gathers per step.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{drive, scalar, Plan, Scanner};

const LANES: usize = 8;

pub(super) fn find(
    s: &Scanner,
    data: &[u8],
    range: Range<usize>,
    stripe: Option<usize>,
) -> Option<usize> {
    // Stripes are a multiple of 4 steps; the last roll of a round reads one byte past the last
    // window (its result is never tested).
    let plan = Plan::new(LANES, s.window, s.mask, 4, 4).with_stripe(stripe);
    drive(
        plan,
        s.window,
        data.len(),
        range,
        // SAFETY: AVX2 availability was checked by `find_with`; `drive` keeps every read of the
        // round (windows + 4 bytes of slack) inside `data`.
        |start, stripe| unsafe { round(s, data.as_ptr(), start, stripe) },
        |r| scalar::serial(s, data, r),
    )
}

/// Byte `k` of every dword, zero-extended (a `vpshufb` control).
#[inline(always)]
unsafe fn byte_sel(k: i8) -> __m256i {
    let z = -128i8;
    _mm256_setr_epi8(
        k,
        z,
        z,
        z,
        4 + k,
        z,
        z,
        z,
        8 + k,
        z,
        z,
        z,
        12 + k,
        z,
        z,
        z,
        k,
        z,
        z,
        z,
        4 + k,
        z,
        z,
        z,
        8 + k,
        z,
        z,
        z,
        12 + k,
        z,
        z,
        z,
    )
}

#[inline(always)]
unsafe fn rotl1(h: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_slli_epi32::<1>(h), _mm256_srli_epi32::<31>(h))
}

/// # Safety
/// AVX2 must be available; `data` valid for `start + 8*stripe - 1 + W + 4` bytes;
/// `stripe` a positive multiple of 4 with `8*stripe + W + 4 < 2^31`.
#[target_feature(enable = "avx2")]
unsafe fn round(s: &Scanner, data: *const u8, start: usize, stripe: usize) -> Option<usize> {
    let w = s.window;
    let base = data.add(start) as *const i32;
    let st = stripe as i32;
    let offs = _mm256_setr_epi32(0, st, 2 * st, 3 * st, 4 * st, 5 * st, 6 * st, 7 * st);
    let t = s.t.as_ptr() as *const i32;
    let r = s.r.as_ptr() as *const i32;
    let sel = [byte_sel(0), byte_sel(1), byte_sel(2), byte_sel(3)];
    let mask = _mm256_set1_epi32(s.mask as i32);
    let zero = _mm256_setzero_si256();

    // Warm-up: the first window of every lane.
    let mut h = zero;
    let mut i = 0usize;
    while i + 4 <= w {
        let d =
            _mm256_i32gather_epi32::<1>(base, _mm256_add_epi32(offs, _mm256_set1_epi32(i as i32)));
        for sk in &sel {
            let b = _mm256_shuffle_epi8(d, *sk);
            h = _mm256_xor_si256(rotl1(h), _mm256_i32gather_epi32::<4>(t, b));
        }
        i += 4;
    }
    while i < w {
        let d =
            _mm256_i32gather_epi32::<1>(base, _mm256_add_epi32(offs, _mm256_set1_epi32(i as i32)));
        let b = _mm256_shuffle_epi8(d, sel[0]);
        h = _mm256_xor_si256(rotl1(h), _mm256_i32gather_epi32::<4>(t, b));
        i += 1;
    }

    let mut first = [usize::MAX; LANES];
    let mut record = |bits: u32, step: usize| -> bool {
        for (j, f) in first.iter_mut().enumerate() {
            if bits & (1 << j) != 0 && *f == usize::MAX {
                *f = step;
            }
        }
        bits & 1 != 0
    };
    let hits = |h: __m256i| -> u32 {
        let m = _mm256_cmpeq_epi32(_mm256_and_si256(h, mask), zero);
        _mm256_movemask_ps(_mm256_castsi256_ps(m)) as u32
    };
    let b0 = hits(h);
    if b0 != 0 && record(b0, 0) {
        return Some(start);
    }
    let inoff = _mm256_add_epi32(offs, _mm256_set1_epi32(w as i32));
    let mut g = 0usize;
    while g < stripe {
        let gi = _mm256_set1_epi32(g as i32);
        let dout = _mm256_i32gather_epi32::<1>(base, _mm256_add_epi32(offs, gi));
        let din = _mm256_i32gather_epi32::<1>(base, _mm256_add_epi32(inoff, gi));
        for (k, sk) in sel.iter().enumerate() {
            let o = _mm256_shuffle_epi8(dout, *sk);
            let n = _mm256_shuffle_epi8(din, *sk);
            let ro = _mm256_i32gather_epi32::<4>(r, o);
            let tn = _mm256_i32gather_epi32::<4>(t, n);
            h = _mm256_xor_si256(_mm256_xor_si256(rotl1(h), ro), tn);
            let step = g + k + 1;
            let b = hits(h);
            if b != 0 && step < stripe && record(b, step) {
                return Some(start + step);
            }
        }
        g += 4;
    }
    (1..LANES)
        .find(|&j| first[j] != usize::MAX)
        .map(|j| start + j * stripe + first[j])
}
