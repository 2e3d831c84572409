//! Process pools in a tokio program, two ways in.
//!
//! `#[tokio::main]` starts the runtime's threads before `main`'s body runs, too late for
//! `proctor::init()` there (forking a multi-threaded program is unsafe). Either write
//! `proctor::init_before_main!();` once at the top level, as below, which starts the fork
//! server from the program's constructors, before `main` and any thread; or write a plain
//! `fn main` that calls `proctor::init()` first and then builds the runtime by hand (the
//! crate's manual shows that one). This example writes out what `#[tokio::main]` expands to,
//! so it needs no macro feature of tokio:
//!
//! ```sh
//! cargo run -p proctor-pool --example tokio_main
//! ```

// With `#[tokio::main]`, this line is all it takes.
proctor::init_before_main!();

fn square(n: u64) -> u64 {
    n * n
}

/// What `#[tokio::main] async fn main()` becomes: a multi-threaded runtime, started first.
fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async_main())
}

async fn async_main() {
    // Built inside the runtime, whose threads already exist: the fork server was started
    // before them.
    let pool = proctor::Pool::processes(2)
        .build()
        .expect("init_before_main! started the fork server before the runtime's threads");
    // A `Task` is a `Future`: awaiting it never blocks a runtime thread.
    let tasks: Vec<_> = (1..=5).map(|n| pool.submit(square, n)).collect();
    let mut squares = Vec::new();
    for task in tasks {
        squares.push(task.await.expect("a square"));
    }
    println!("Squares (Processes, under tokio): {squares:?}");
    // `map` blocks until every outcome is in: off the runtime's threads.
    let pool = std::sync::Arc::new(pool);
    let p = std::sync::Arc::clone(&pool);
    let outcomes = tokio::task::spawn_blocking(move || p.map(square, vec![6, 7]))
        .await
        .expect("the blocking map");
    println!("map under tokio: {outcomes:?}");
}
