use super::*;

#[test]
fn section_from_hand_made_runs() {
    let n = 1_000u64;
    let runs = Variant::ALL
        .into_iter()
        .map(|variant| ThreadRuns {
            variant,
            threads: 2,
            expected: 2 * n,
            finals: if variant == Variant::Unsync {
                vec![1_200, 1_500, 1_300]
            } else {
                vec![2 * n; 3]
            },
            ns_per_increment: vec![5.0, 6.0, 7.0],
        })
        .collect();
    let result = RaceResult {
        increments_per_worker: n,
        repetitions: 3,
        runs,
        processes: ProcessRuns {
            workers: 2,
            expected: 2 * n,
            parent_after_copy: vec![0; 3],
            child_saw_copy: vec![n; 6],
            shared_atomic_final: vec![2 * n; 3],
            shared_unsync_final: vec![1_800; 3],
        },
        distributions: vec![LossDistribution {
            setting: "threads_2".to_string(),
            threads: 2,
            cpus: vec![0, 1],
            expected: 2 * n,
            lost: vec![0, 5, 300, 0, 90],
        }],
        exact: vec![ExactRuns {
            variant: Variant::Mutex,
            threads: 2,
            runs: 5,
            exact: 5,
            inexact_finals: Vec::new(),
        }],
    };
    let s = section_from(&result, 2);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(value("race.expected"), Some(2_000.0));
    assert_eq!(value("race.final.unsync"), Some(1_300.0));
    assert_eq!(value("race.final.mutex"), Some(2_000.0));
    assert_eq!(value("race.ns_per_inc.atomic"), Some(6.0));
    assert_eq!(value("race.parent_after.process_copy"), Some(0.0));
    assert_eq!(value("race.final.process_shared_atomic"), Some(2_000.0));
    assert_eq!(value("race.dist.runs"), Some(5.0));
    assert_eq!(value("race.dist.threads_2.lossy_runs"), Some(3.0));
    assert_eq!(value("race.dist.threads_2.lost_median"), Some(5.0));
    assert_eq!(value("race.dist.threads_2.lost_max"), Some(300.0));
    assert_eq!(value("race.runs_exact.mutex"), Some(5.0));
    let hist = s
        .charts
        .iter()
        .find(|c| c.id == "lost-histogram")
        .expect("a histogram");
    let total: f64 = hist.series[0].points.iter().map(|p| p.1).sum();
    assert_eq!(total, 5.0);
    assert_eq!(hist.series[0].points[0].1, 2.0, "two runs lost nothing");
}

#[test]
fn histogram_bins_cover_every_run_once() {
    let a = [0u64, 1, 10, 89, 100];
    let b = [0u64, 0, 50];
    let (labels, counts) = loss_histogram(&[&a, &b], 10);
    assert_eq!(labels.len(), 11);
    assert_eq!(labels[0], "0");
    assert_eq!(labels[1], "1–10");
    assert_eq!(labels[10], "91–100");
    assert_eq!(counts[0], vec![1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    assert_eq!(counts[1].iter().sum::<u64>(), 3);
    assert_eq!(counts[1][0], 2);
    // Nothing lost anywhere: one bin, every run in it.
    let (labels, counts) = loss_histogram(&[&[0, 0]], 10);
    assert_eq!(labels, vec!["0"]);
    assert_eq!(counts, vec![vec![2]]);
}
