//! Portable scalar paths: a tuned single-lane scan and a multi-lane scan in general registers.

// Lanes are indexed in lock-step (`h[j]`, `base[j]`, `first[j]`) on purpose: it is what keeps
// the hot loops in registers.
#![allow(clippy::needless_range_loop)]

use std::ops::Range;

use super::{drive, Plan, Scanner, Table};

/// Lanes for the general-register kernel: 4 hash states + 4 stripe pointers + index registers
/// fit x86_64's 16 general registers.
const LANES: usize = 4;

pub(super) fn find(
    s: &Scanner,
    data: &[u8],
    range: Range<usize>,
    stripe: Option<usize>,
) -> Option<usize> {
    let mut plan = Plan::new(LANES, s.window, s.mask, 0, 1).with_stripe(stripe);
    if stripe.is_none() && plan.stripe > 0 {
        // Full rounds use a compile-time stripe length (lane offsets become immediates).
        plan.stripe = CONST_STRIPES
            .iter()
            .copied()
            .filter(|&c| c <= plan.stripe)
            .max()
            .unwrap_or(plan.stripe);
    }
    let p = data.as_ptr();
    drive(
        plan,
        s.window,
        data.len(),
        range,
        // SAFETY: `drive` only passes rounds whose windows lie inside `data` (slack 0).
        |start, stripe| unsafe {
            match stripe {
                64 => round_c::<LANES, 64>(s, p, start),
                256 => round_c::<LANES, 256>(s, p, start),
                512 => round_c::<LANES, 512>(s, p, start),
                1344 => round_c::<LANES, 1344>(s, p, start),
                2368 => round_c::<LANES, 2368>(s, p, start),
                4416 => round_c::<LANES, 4416>(s, p, start),
                8512 => round_c::<LANES, 8512>(s, p, start),
                16704 => round_c::<LANES, 16704>(s, p, start),
                33088 => round_c::<LANES, 33088>(s, p, start),
                65856 => round_c::<LANES, 65856>(s, p, start),
                131392 => round_c::<LANES, 131392>(s, p, start),
                _ => lanes_round::<LANES>(s, p, start, stripe),
            }
        },
        |r| serial(s, data, r),
    )
}

/// Stripe lengths with a specialised kernel (64 only ever by the testing hook).
/// Lengths just above powers of two, so that the lanes' streams do not all map to the same
/// L1 cache sets.
const CONST_STRIPES: [usize; 11] = [
    64, 256, 512, 1344, 2368, 4416, 8512, 16704, 33088, 65856, 131392,
];

/// [`lanes_round`] with the stripe length known at compile time: one moving pointer pair and
/// constant lane displacements keep everything in registers.
///
/// # Safety
/// As [`lanes_round`] with `stripe = ST`.
#[inline(never)]
unsafe fn round_c<const K: usize, const ST: usize>(
    s: &Scanner,
    data: *const u8,
    start: usize,
) -> Option<usize> {
    let (t, r, mask, w) = (&s.t, &s.r, s.mask, s.window);
    let base = data.add(start);
    let mut h = [0u32; K];
    for i in 0..w {
        for (j, hj) in h.iter_mut().enumerate() {
            *hj = hj.rotate_left(1) ^ t[*base.add(i + j * ST) as usize];
        }
    }
    let mut first = [usize::MAX; K];
    for j in 0..K {
        if h[j] & mask == 0 {
            if j == 0 {
                return Some(start);
            }
            hit(&mut first, j, 0);
        }
    }
    let mut po = base;
    let mut pi = base.add(w);
    let end = base.add(ST - 1);
    while po < end {
        for (j, hj) in h.iter_mut().enumerate() {
            let bo = *po.add(j * ST);
            let bi = *pi.add(j * ST);
            *hj = hj.rotate_left(1) ^ r[bo as usize] ^ t[bi as usize];
        }
        po = po.add(1);
        pi = pi.add(1);
        for j in 0..K {
            if h[j] & mask == 0 {
                let step = po.offset_from(base) as usize;
                if j == 0 {
                    return Some(start + step);
                }
                hit(&mut first, j, step);
            }
        }
    }
    (1..K)
        .find(|&j| first[j] != usize::MAX)
        .map(|j| start + j * ST + first[j])
}

/// Single-lane scan of `range` (windows must lie inside `data`; checked by the caller).
pub(crate) fn serial(s: &Scanner, data: &[u8], range: Range<usize>) -> Option<usize> {
    if range.start >= range.end {
        return None;
    }
    let w = s.window;
    assert!(range.end - 1 + w <= data.len());
    let (t, r, mask) = (&s.t, &s.r, s.mask);
    let mut h = Table(s.t).hash_fast(&data[range.start..range.start + w]);
    // Rolling reads data[p] and data[p + w] for p in range.start .. range.end - 1.
    let outs = &data[range.start..range.end - 1];
    let ins = &data[range.start + w..range.end - 1 + w];
    let mut p = range.start;
    for (&o, &i) in outs.iter().zip(ins.iter()) {
        if h & mask == 0 {
            return Some(p);
        }
        h = h.rotate_left(1) ^ r[o as usize] ^ t[i as usize];
        p += 1;
    }
    if h & mask == 0 {
        Some(p)
    } else {
        None
    }
}

/// One round of `K` lanes: lane `j` scans candidates `[start + j*stripe, start + (j+1)*stripe)`.
///
/// # Safety
/// `data` must be valid for reads of `start + K*stripe - 1 + W` bytes; `stripe >= 1`.
#[inline(always)]
pub(crate) unsafe fn lanes_round<const K: usize>(
    s: &Scanner,
    data: *const u8,
    start: usize,
    stripe: usize,
) -> Option<usize> {
    let (t, r, mask, w) = (&s.t, &s.r, s.mask, s.window);
    let mut base = [data; K];
    for (j, b) in base.iter_mut().enumerate() {
        *b = data.add(start + j * stripe);
    }
    // Warm-up: hash each lane's first window.
    let mut h = [0u32; K];
    for i in 0..w {
        for j in 0..K {
            h[j] = h[j].rotate_left(1) ^ t[*base[j].add(i) as usize];
        }
    }
    let mut first = [usize::MAX; K];
    for j in 0..K {
        if h[j] & mask == 0 {
            if j == 0 {
                return Some(start);
            }
            hit(&mut first, j, 0);
        }
    }
    // `o` indexes the bytes leaving the windows, `i = o + w` the bytes entering them.
    let mut o = 0usize;
    let mut i = w;
    let last = stripe - 1;
    while o < last {
        for j in 0..K {
            let bo = *base[j].add(o);
            let bi = *base[j].add(i);
            h[j] = h[j].rotate_left(1) ^ r[bo as usize] ^ t[bi as usize];
        }
        o += 1;
        i += 1;
        for j in 0..K {
            if h[j] & mask == 0 {
                if j == 0 {
                    return Some(start + o);
                }
                hit(&mut first, j, o);
            }
        }
    }
    (1..K)
        .find(|&j| first[j] != usize::MAX)
        .map(|j| start + j * stripe + first[j])
}

/// Record the first hit of lane `j` (kept out of line so the hot loop stays a plain
/// test-and-branch per lane).
#[cold]
#[inline(never)]
fn hit(first: &mut [usize], j: usize, step: usize) {
    if first[j] == usize::MAX {
        first[j] = step;
    }
}
