use std::time::Instant;
fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}
fn main() {
    proctor::init();
    for mode in [proctor::Mode::Threads, proctor::Mode::Processes] {
        let pool = proctor::Pool::builder(mode, 2).build().unwrap();
        for _ in 0..4 {
            let t = Instant::now();
            let out = pool.map(trivial, 0..1_000_000u64);
            let m = t.elapsed();
            let t = Instant::now();
            let v = pool.try_map(trivial, 0..1_000_000u64).unwrap();
            println!(
                "{mode}: map {:?} try_map {:?} {} {}",
                m,
                t.elapsed(),
                out.len(),
                v.len()
            );
        }
    }
}
