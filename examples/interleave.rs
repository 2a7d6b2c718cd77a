use sha1::{Digest, Sha1};
fn run<const K: usize>(step: usize) -> f64 {
    let bufs: Vec<Vec<u8>> = (0..K).map(|i| vec![i as u8; 1 << 20]).collect();
    let reps = 2048 / K;
    let t = std::time::Instant::now();
    let mut n = 0u64;
    for _ in 0..reps {
        let mut hs: [Sha1; K] = std::array::from_fn(|_| Sha1::new());
        let mut off = 0;
        while off < (1 << 20) {
            for k in 0..K {
                hs[k].update(&bufs[k][off..off + step]);
            }
            off += step;
        }
        for h in hs {
            n += h.finalize()[0] as u64;
        }
    }
    let s = t.elapsed().as_secs_f64();
    std::hint::black_box(n);
    (reps * K) as f64 * 1048576.0 / s / 1e9
}
fn main() {
    for step in [64usize, 128, 256] {
        println!(
            "step {step}: x1 {:.2}  x2 {:.2}  x3 {:.2}  x4 {:.2} GB/s",
            run::<1>(step),
            run::<2>(step),
            run::<3>(step),
            run::<4>(step)
        );
    }
}
