use std::time::Instant;
fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}
fn main() {
    proctor::init();
    let pool = proctor::Pool::processes(1).build().unwrap();
    for _ in 0..3 {
        let n = 100_000;
        let t = Instant::now();
        for i in 0..n {
            let _ = pool.submit(trivial, i).join();
        }
        println!("process rtt: {:?}", t.elapsed() / n as u32);
    }
}
