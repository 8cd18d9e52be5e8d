//! Portable scalar paths: a tuned single-lane scan and a multi-lane scan in general registers.

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
    let plan = Plan::new(LANES, s.window, s.mask, 0, 1).with_stripe(stripe);
    drive(
        plan,
        s.window,
        data.len(),
        range,
        // SAFETY: `drive` only passes rounds whose windows lie inside `data` (slack 0).
        |start, stripe| unsafe { lanes_round::<LANES>(s, data.as_ptr(), start, stripe) },
        |r| serial(s, data, r),
    )
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
    let mut step = 0usize;
    loop {
        for j in 0..K {
            if h[j] & mask == 0 {
                if j == 0 {
                    return Some(start + step);
                }
                if first[j] == usize::MAX {
                    first[j] = step;
                }
            }
        }
        step += 1;
        if step == stripe {
            break;
        }
        for j in 0..K {
            let o = *base[j].add(step - 1);
            let i = *base[j].add(step - 1 + w);
            h[j] = h[j].rotate_left(1) ^ r[o as usize] ^ t[i as usize];
        }
    }
    (1..K)
        .find(|&j| first[j] != usize::MAX)
        .map(|j| start + j * stripe + first[j])
}
