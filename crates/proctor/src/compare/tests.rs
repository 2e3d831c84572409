use super::*;
use crate::ArcStr;

fn timing(median_us: u64, min_us: u64, max_us: u64) -> Timing {
    let us = Duration::from_micros;
    Timing {
        per_task: us(median_us),
        per_task_min: us(min_us),
        per_task_max: us(max_us),
        throughput: 2.0 / (median_us as f64 * 1e-6),
    }
}

fn comparison(threads: Timing, processes: Timing, crash: Crash) -> ModeComparison {
    ModeComparison {
        workers: 2,
        tasks_per_round: 400,
        rounds: 5,
        inline: timing(100, 99, 101),
        threads,
        processes,
        memory: Memory {
            thread_growth_bytes: Some(64 << 10),
            process_rss_bytes: Some(3 << 20),
            process_pss_bytes: Some(1 << 20),
            process_private_bytes: Some(512 << 10),
            process_page_tables_bytes: Some(96 << 10),
        },
        crash,
    }
}

fn untried() -> Crash {
    Crash {
        threads: CrashOutcome::NotTried,
        processes: CrashOutcome::NotTried,
    }
}

#[test]
fn a_round_repeats_the_inputs_to_its_time_in_whole_tasks_per_worker() {
    let ms = Duration::from_millis;
    // 10 inputs take 1 ms inline; 100 ms of work is 100 passes.
    assert_eq!(tasks_per_round(10, ms(1), ms(100), 2), 1_000);
    // Rounded up so that every worker gets the same count.
    assert_eq!(tasks_per_round(10, ms(1), ms(100), 3), 1_002);
    // Inputs that take longer than a round run once (never fewer than given).
    assert_eq!(tasks_per_round(7, ms(500), ms(100), 2), 8);
    // A task too quick to time, and one that fills a round alone, are both capped.
    let capped = tasks_per_round(10, Duration::ZERO, ms(100), 3);
    assert!(capped <= MAX_TASKS_PER_ROUND && capped % 3 == 0, "{capped}");
    assert_eq!(
        tasks_per_round(1, Duration::from_nanos(1), ms(100), 1),
        MAX_TASKS_PER_ROUND
    );
}

#[test]
fn processes_differ_clearly_only_past_ten_percent_with_rounds_apart() {
    let threads = timing(100, 98, 102);
    let d = |p: Timing| Difference::between(&p, &threads);
    assert_eq!(d(timing(130, 125, 135)), Difference::ClearlyMore);
    assert_eq!(d(timing(80, 78, 82)), Difference::ClearlyLess);
    // Within ±10 %, though the rounds are apart.
    assert_eq!(d(timing(105, 104, 106)), Difference::NoClearDifference);
    // Past 10 %, but one process round reaches into the threads' range.
    assert_eq!(d(timing(130, 101, 135)), Difference::NoClearDifference);
}

#[test]
fn the_verdict_names_both_figures_and_the_crash_clause() {
    let cmp = comparison(timing(100, 98, 102), timing(130, 125, 135), untried());
    let v = cmp.to_string();
    assert_eq!(
        v,
        "processes cost +30 % per task here (130 µs vs 100 µs in threads: clearly more); \
         an abort or segfault is contained in a process and ends the program in a thread \
         (the pool's contract)"
    );
    assert!(!v.contains('\n'));
    assert!((cmp.process_cost_ratio() - 1.3).abs() < 1e-9);
    assert_eq!(cmp.overhead(Mode::Processes), Duration::from_micros(30));
    assert_eq!(cmp.overhead(Mode::Threads), Duration::ZERO);
}

#[test]
fn a_cheaper_process_figure_reads_as_a_negative_cost() {
    let cmp = comparison(timing(100, 98, 102), timing(96, 95, 99), untried());
    assert!(
        cmp.to_string()
            .starts_with("processes cost −4.0 % per task here (96.0 µs vs 100 µs in threads: no clear difference)"),
        "{cmp}"
    );
}

#[test]
fn the_alternate_form_adds_each_mode_memory_and_the_crash() {
    let crash = Crash {
        processes: CrashOutcome::Contained {
            error: TaskError::Crashed {
                signal: Some(libc::SIGABRT),
                exit_code: None,
                stderr_tail: ArcStr::new(),
                worker: 0,
                index: 0,
                attempts: 1,
            },
            pool_went_on: true,
        },
        threads: CrashOutcome::NotRun {
            why: "it would end this program".to_string(),
        },
    };
    let cmp = comparison(timing(100, 98, 102), timing(110, 108, 112), crash);
    let short = cmp.to_string();
    assert!(
        short.ends_with(
            "the crash input (SIGABRT) is contained in a process and would end the \
             program in a thread"
        ),
        "{short}"
    );
    let long = format!("{cmp:#}");
    let (first, rest) = long.split_once('\n').expect("more than one line");
    assert_eq!(first, short);
    assert_eq!(
        rest,
        "\
2 workers, median of 5 rounds of 400 tasks:
                  per task  rounds' range        overhead    tasks/s
  the task alone    100 µs  99.0 µs–101 µs                    20.0 k
  threads           100 µs  98.0 µs–102 µs          +0 ns     20.0 k
  processes         110 µs  108 µs–112 µs        +10.0 µs     18.2 k
memory per worker:
  a process  1.00 MiB PSS (RSS 3.00 MiB, private 512 KiB, page tables 96.0 KiB)
  a thread   64.0 KiB (this program's RSS growth, per thread)
the crash input:
  in a process: the pool went on after
    worker 0 was killed by SIGABRT (abort) while running item 0
  on a thread: not run: it would end this program"
    );
    assert!(rest.lines().all(|l| l.chars().count() <= 80), "{rest}");
}

#[test]
fn a_panicking_crash_input_is_caught_in_both_modes() {
    let panicked = CrashOutcome::Contained {
        error: TaskError::Panicked {
            message: "bad input".into(),
            location: None,
            worker: 1,
            index: 3,
            attempts: 1,
        },
        pool_went_on: true,
    };
    let crash = Crash {
        processes: panicked.clone(),
        threads: panicked,
    };
    assert_eq!(
        crash.words(),
        "the crash input's panic is caught in both modes"
    );
}

#[test]
fn smaps_rollup_figures_are_read_in_bytes() {
    let text = "55d0c0a00000-7ffd2b5f1000 ---p 00000000 00:00 0                          [rollup]
Rss:                2048 kB
Pss:                 700 kB
Pss_Anon:            300 kB
Shared_Clean:       1400 kB
Shared_Dirty:          0 kB
Private_Clean:       100 kB
Private_Dirty:       548 kB
Referenced:         2048 kB
";
    let status = "Name:\tcompare\nVmRSS:\t    2048 kB\nVmPTE:\t      88 kB\nThreads:\t1\n";
    assert_eq!(
        memory::parse(text, status),
        Some(memory::Usage {
            rss: 2048 << 10,
            pss: 700 << 10,
            private: 648 << 10,
            page_tables: 88 << 10,
        })
    );
    assert_eq!(memory::parse("Rss: 12 kB\n", status), None);
    assert_eq!(memory::parse(text, "VmRSS: 2048 kB\n"), None);
}

#[test]
fn figures_are_scaled_for_reading() {
    assert_eq!(time(Duration::from_nanos(845)), "845 ns");
    assert_eq!(time(Duration::from_nanos(12_340)), "12.3 µs");
    assert_eq!(time(Duration::from_micros(1_250)), "1.25 ms");
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(1_153_433), "1.10 MiB");
    assert_eq!(rate(18_600.0), "18.6 k");
    assert_eq!(grouped(250_000), "250,000");
    assert_eq!(grouped(999), "999");
    assert_eq!(signed_percent(3.04), "+3.0 %");
    assert_eq!(signed_percent(-12.4), "−12 %");
    assert_eq!(signed_percent(f64::INFINITY), "n/a");
    assert_eq!(signed_percent(f64::NAN), "n/a");
}

#[test]
fn bad_settings_are_errors_not_panics() {
    fn id(n: u64) -> u64 {
        n
    }
    let none: Vec<u64> = Vec::new();
    let e = CompareModes::new(id, none).run().unwrap_err();
    assert!(
        e.is_invalid_config() && e.to_string().contains("at least one sample input"),
        "{e}"
    );
    let e = CompareModes::new(id, [1]).workers(0).run().unwrap_err();
    assert!(e.to_string().contains("at least one worker"), "{e}");
    let e = CompareModes::new(id, [1]).rounds(2).run().unwrap_err();
    assert!(e.to_string().contains("at least 3 rounds"), "{e}");
    let e = CompareModes::new(id, [1])
        .round_time(Duration::ZERO)
        .run()
        .unwrap_err();
    assert!(e.to_string().contains("round_time"), "{e}");
}
