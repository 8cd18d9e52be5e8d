//! Quick throughput check of the buzhash scan kernels: `cargo run --profile ci -p rborg-simd
//! --example scan_speed [MiB [BACKEND]]`.

use std::time::Instant;

use rborg_simd::buzhash::{Scanner, Table};
use rborg_simd::Backend;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let mut x = 0x1234_5678u32;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect();
    let mut t = [0u32; 256];
    for (i, e) in t.iter_mut().enumerate() {
        *e = (i as u32).wrapping_mul(0x9E37_79B1).rotate_left(7) ^ 0xA5A5_1234;
    }
    let table = Table(t);
    for (w, bits) in [(4095usize, 21u32), (4095, 17), (4095, 32)] {
        let s = Scanner::new(
            &table,
            w,
            if bits == 32 {
                u32::MAX
            } else {
                (1 << bits) - 1
            },
        );
        let only = std::env::args().nth(2).and_then(|n| Backend::from_name(&n));
        for b in Backend::available()
            .into_iter()
            .filter(|b| only.is_none_or(|o| o == *b))
        {
            let end = data.len() - w + 1;
            let t0 = Instant::now();
            let mut p = 0;
            let mut hits = 0;
            // Scan like the chunker: restart 512 KiB after every hit.
            while p < end {
                match s.find_with(b, &data, p..end) {
                    Some(q) => {
                        hits += 1;
                        p = q + (512 << 10);
                    }
                    None => break,
                }
            }
            let dt = t0.elapsed().as_secs_f64();
            println!(
                "w={w} bits={bits:2} {:>9}: {:6.2} GB/s ({hits} hits)",
                b.name(),
                data.len() as f64 / dt / 1e9
            );
        }
    }
}
