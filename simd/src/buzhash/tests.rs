use super::*;
use proptest::prelude::*;

/// A deterministic pseudo-random table (splitmix64).
fn table_from(seed: u64) -> Table {
    let mut x = seed;
    let mut t = [0u32; 256];
    for e in t.iter_mut() {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        *e = (z ^ (z >> 31)) as u32;
    }
    Table(t)
}

fn bytes_from(seed: u64, len: usize) -> Vec<u8> {
    let t = table_from(seed);
    let mut x = seed as u32 | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x ^ t.0[i & 255]) as u8
        })
        .collect()
}

/// A mask with `bits` bits set at pseudo-random places (0 bits = every window matches).
fn mask_from(seed: u64, bits: u32) -> u32 {
    if bits >= 32 {
        return u32::MAX;
    }
    let t = table_from(seed ^ 0x5555);
    let mut m = 0u32;
    let mut i = 0;
    while m.count_ones() < bits {
        m |= 1 << (t.0[i % 256] % 32);
        i += 1;
    }
    m
}

fn check_all(s: &Scanner, data: &[u8], range: Range<usize>, stripes: &[usize]) {
    let want = s.find_reference(data, range.clone());
    for b in Backend::available() {
        assert_eq!(
            s.find_with(b, data, range.clone()),
            want,
            "{b} auto plan, range {range:?} {s:?}"
        );
        for &st in stripes {
            assert_eq!(
                s.find_with_stripe(b, data, range.clone(), st),
                want,
                "{b} stripe {st}, range {range:?} {s:?}"
            );
        }
    }
}

#[test]
fn hash_definitions_agree() {
    let t = table_from(7);
    let d = bytes_from(3, 9000);
    for n in [0usize, 1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 100, 4095] {
        assert_eq!(t.hash(&d[..n]), t.hash_fast(&d[..n]), "n={n}");
    }
    // Rolling update equals hashing the moved window.
    for w in [1usize, 2, 31, 32, 33, 100, 4095] {
        let mut h = t.hash(&d[..w]);
        for p in 0..200 {
            h = t.roll(h, d[p], d[p + w], w);
            assert_eq!(h, t.hash(&d[p + 1..p + 1 + w]), "w={w} p={p}");
        }
    }
}

#[test]
fn zero_window_multiple_of_64_hashes_to_zero() {
    let t = table_from(11);
    assert_eq!(t.hash(&[0u8; 64]), 0);
    assert_eq!(t.hash(&[0u8; 128]), 0);
}

#[test]
fn empty_range_and_bounds() {
    let s = Scanner::new(&table_from(1), 16, 0);
    let d = [0u8; 20];
    for b in Backend::available() {
        assert_eq!(s.find_with(b, &d, 5..5), None);
        assert_eq!(s.find_with(b, &d, 0..5), Some(0));
        assert_eq!(s.find_with(b, &d, 4..5), Some(4));
    }
}

#[test]
#[should_panic]
fn range_past_end_panics() {
    let s = Scanner::new(&table_from(1), 16, 0);
    s.find_with(Backend::Scalar, &[0u8; 20], 0..6);
}

#[test]
fn env_names_round_trip() {
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(b.name()), Some(b));
    }
    assert_eq!(Backend::from_name("AVX512"), Some(Backend::Avx512));
    assert_eq!(Backend::from_name("sse"), None);
    assert!(Backend::auto().is_available());
}

/// Large windows and realistic masks with the automatic plan (the lane paths are used).
#[test]
fn realistic_params_large_data() {
    let data = bytes_from(42, 3 << 20);
    for (seed, w, bits) in [
        (1u64, 4095usize, 12u32),
        (2, 4095, 14),
        (3, 4095, 16),
        (4, 4095, 17),
        (5, 1023, 13),
        (6, 4095, 21),
    ] {
        let s = Scanner::new(&table_from(seed), w, (1u32 << bits) - 1);
        let end = data.len() - w + 1;
        let mut p = 0;
        // Walk through the data like a chunker does: every hit restarts the scan further on.
        while p < end {
            let want = s.find_reference(&data, p..end);
            for b in Backend::available() {
                assert_eq!(
                    s.find_with(b, &data, p..end),
                    want,
                    "{b} w={w} bits={bits} p={p}"
                );
            }
            match want {
                Some(q) => p = q + 1 + (q % 7919),
                None => break,
            }
        }
    }
}

/// All-zero data: every window has the same hash; a zero-hash (W multiple of 64) hits at once.
#[test]
fn zero_data() {
    let data = vec![0u8; 300_000];
    for w in [64usize, 4095, 4096] {
        for seed in [0u64, 9] {
            let s = Scanner::new(&table_from(seed), w, (1 << 12) - 1);
            for start in [0usize, 1, 1000] {
                check_all(&s, &data, start..data.len() - w + 1, &[64, 1000]);
            }
        }
    }
}

fn arb_case() -> impl Strategy<Value = (u64, usize, u32, Vec<u8>, usize, usize, usize)> {
    (
        any::<u64>(),
        prop_oneof![4 => 1usize..80, 2 => 80usize..700, 1 => Just(4095usize)],
        prop_oneof![3 => 0u32..6, 3 => 6u32..12, 1 => 12u32..33],
        any::<u64>(),
        0usize..20_000,
        any::<usize>(),
        any::<usize>(),
    )
        .prop_map(|(tseed, w, bits, dseed, extra, a, b)| {
            let len = w + extra;
            let data = bytes_from(dseed, len);
            let span = len - w + 1; // valid window starts: 0..span
            let x = a % (span + 1);
            let y = b % (span + 1);
            let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
            (tseed, w, bits, data, lo, hi, extra)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Random tables, windows, masks (including ones that hit at almost every position),
    /// lengths, ranges (including ones touching both ends of the data) and forced stripe
    /// lengths: every backend equals the reference.
    #[test]
    fn backends_agree_with_reference((tseed, w, bits, data, lo, hi, _extra) in arb_case(), st in 1usize..600) {
        let s = Scanner::new(&table_from(tseed), w, mask_from(tseed, bits));
        let want = s.find_reference(&data, lo..hi);
        for b in Backend::available() {
            prop_assert_eq!(s.find_with(b, &data, lo..hi), want, "{} auto", b);
            for stripe in [st, st / 7, 4, 5, 1] {
                prop_assert_eq!(s.find_with_stripe(b, &data, lo..hi, stripe), want, "{} stripe {}", b, stripe);
            }
        }
    }

    /// Ranges ending exactly at the last window and starting at every small offset
    /// (alignment of the data pointer does not matter).
    #[test]
    fn ranges_near_the_end(tseed in any::<u64>(), w in 1usize..200, bits in 0u32..10, len_extra in 0usize..3000, back in 0usize..40, off in 0usize..16) {
        let buf = bytes_from(tseed ^ 77, w + len_extra + 16);
        let data = &buf[off..off + w + len_extra];
        let s = Scanner::new(&table_from(tseed), w, mask_from(tseed, bits));
        let end = data.len() - w + 1;
        let lo = end.saturating_sub(back * 37 + 1);
        let want = s.find_reference(data, lo..end);
        for b in Backend::available() {
            for stripe in [0usize, 4, 8, 12, 64] {
                prop_assert_eq!(s.find_with_stripe(b, data, lo..end, stripe), want, "{} stripe {}", b, stripe);
            }
        }
    }
}
