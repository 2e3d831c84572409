use std::time::Instant;
fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}
fn main() {
    proctor::init();
    let modes: Vec<proctor::Mode> = match std::env::args().nth(1).as_deref() {
        Some("t") => vec![proctor::Mode::Threads],
        Some("p") => vec![proctor::Mode::Processes],
        _ => vec![proctor::Mode::Threads, proctor::Mode::Processes],
    };
    for mode in modes {
        let pool = proctor::Pool::builder(mode, 2).build().unwrap();
        for _ in 0..5 {
            let t = Instant::now();
            let out = pool.map(trivial, 0..1_000_000u64);
            println!("{mode}: {:?} {}", t.elapsed(), out.len());
        }
    }
}
