//! Statistics over samples: median, percentiles and outliers. Pure functions only.
//!
//! Outliers follow the rule hyperfine uses (Iglewicz and Hoaglin's modified Z-score):
//! `M = 0.6745 · (x − median) / MAD`, and a sample with `|M| > 3.5` is flagged. When more than
//! half the samples are equal the MAD is zero, and, as Iglewicz and Hoaglin advise, the mean
//! absolute deviation stands in for it: `M = (x − median) / (1.253314 · MeanAD)`. (Flagging
//! every sample that differs from the median, as a zero MAD would, labelled a third of some
//! runs' samples outliers.) Flagged samples are counted and reported, never dropped.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::Spread;

/// The modified Z-score above which a sample is flagged as an outlier.
pub const OUTLIER_THRESHOLD: f64 = 3.5;

/// The constant that makes the MAD comparable with a standard deviation for normal data.
const MAD_SCALE: f64 = 0.6745;

/// A summary of a set of samples, in the samples' unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Median of the samples.
    pub median: f64,
    /// Arithmetic mean of the samples.
    pub mean: f64,
    /// Smallest sample.
    pub min: f64,
    /// 1st percentile.
    pub p1: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub samples: u64,
    /// Samples whose modified Z-score exceeds [`OUTLIER_THRESHOLD`].
    pub outliers: u64,
}

impl Summary {
    /// The spread in the report's form.
    pub fn spread(&self) -> Spread {
        Spread {
            min: self.min,
            p1: self.p1,
            p99: self.p99,
            max: self.max,
            samples: self.samples,
            outliers: self.outliers,
        }
    }

    /// Every field scaled by `factor` (e.g. a round trip halved into one switch).
    pub fn scaled(&self, factor: f64) -> Summary {
        Summary {
            median: self.median * factor,
            mean: self.mean * factor,
            min: self.min * factor,
            p1: self.p1 * factor,
            p99: self.p99 * factor,
            max: self.max * factor,
            ..*self
        }
    }
}

/// The `p`-th percentile (0..=100) of already sorted samples, interpolating linearly
/// between the two nearest ranks. `NaN` for no samples.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// The samples, sorted ascending (NaNs last).
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// The median; `NaN` for no samples.
pub fn median(samples: &[f64]) -> f64 {
    percentile_sorted(&sorted(samples), 50.0)
}

/// The arithmetic mean; `NaN` for no samples.
pub fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len() as f64
}

/// The median absolute deviation from the median (unscaled).
pub fn mad(samples: &[f64]) -> f64 {
    let m = median(samples);
    let deviations: Vec<f64> = samples.iter().map(|x| (x - m).abs()).collect();
    median(&deviations)
}

/// The constant that makes the mean absolute deviation comparable with a standard deviation
/// for normal data (sqrt(pi / 2)).
const MEAN_AD_SCALE: f64 = 1.253_314;

/// The modified Z-score of every sample. When the MAD is zero (more than half the samples are
/// equal) the mean absolute deviation from the median stands in for it; when that is zero too,
/// every sample equals the median and scores 0.
pub fn modified_z_scores(samples: &[f64]) -> Vec<f64> {
    let m = median(samples);
    let d = mad(samples);
    let mean_ad = samples.iter().map(|x| (x - m).abs()).sum::<f64>() / samples.len() as f64;
    samples
        .iter()
        .map(|x| {
            let dev = (x - m).abs();
            if d > 0.0 {
                MAD_SCALE * dev / d
            } else if mean_ad > 0.0 {
                dev / (MEAN_AD_SCALE * mean_ad)
            } else {
                0.0
            }
        })
        .collect()
}

/// How many samples are outliers by the declared rule (modified Z-score > 3.5).
pub fn count_outliers(samples: &[f64]) -> u64 {
    modified_z_scores(samples)
        .into_iter()
        .filter(|z| *z > OUTLIER_THRESHOLD)
        .count() as u64
}

/// Median, mean, min, p1, p99, max and outliers of the samples; `None` for no samples.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let s = sorted(samples);
    Some(Summary {
        median: percentile_sorted(&s, 50.0),
        mean: mean(&s),
        min: s[0],
        p1: percentile_sorted(&s, 1.0),
        p99: percentile_sorted(&s, 99.0),
        max: s[s.len() - 1],
        samples: s.len() as u64,
        outliers: count_outliers(&s),
    })
}

/// The same summary from a histogram of per-op values (e.g. nanoseconds per op), so that
/// millions of per-op timestamps need not be kept. Outliers use the same modified Z-score
/// rule, with the median and MAD read from the histogram (to its precision).
pub fn summarize_histogram(h: &Histogram<u64>) -> Option<Summary> {
    if h.is_empty() {
        return None;
    }
    let med = h.value_at_quantile(0.5) as f64;
    // The MAD is the median of |x - median|: build that distribution from the recorded values.
    let mut dev = Histogram::<u64>::new_with_bounds(1, h.high().max(2), 3)
        .expect("bounds 1..=high with 3 significant digits are valid");
    for v in h.iter_recorded() {
        let d = (v.value_iterated_to() as f64 - med).abs().round() as u64;
        dev.saturating_record_n(d.max(1), v.count_at_value());
    }
    let mad = dev.value_at_quantile(0.5) as f64;
    let outliers = h
        .iter_recorded()
        .filter(|v| {
            let d = (v.value_iterated_to() as f64 - med).abs();
            mad > 0.0 && MAD_SCALE * d / mad > OUTLIER_THRESHOLD
        })
        .map(|v| v.count_at_value())
        .sum();
    Some(Summary {
        median: med,
        mean: h.mean(),
        min: h.min() as f64,
        p1: h.value_at_quantile(0.01) as f64,
        p99: h.value_at_quantile(0.99) as f64,
        max: h.max() as f64,
        samples: h.len(),
        outliers,
    })
}

/// Fewer samples than this give [`median_and_spread`] no spread: a p1 or p99 over a handful of
/// batches would only repeat the min and the max.
pub const MIN_SPREAD_SAMPLES: usize = 10;

/// The median of the finite samples, and their spread when there are at least
/// [`MIN_SPREAD_SAMPLES`] of them (`NaN` and no spread for none). For experiments that keep
/// one value per batch rather than a [`Summary`].
pub fn median_and_spread(samples: &[f64]) -> (f64, Option<Spread>) {
    let finite: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    match summarize(&finite) {
        None => (f64::NAN, None),
        Some(s) => (
            s.median,
            (finite.len() >= MIN_SPREAD_SAMPLES).then(|| s.spread()),
        ),
    }
}

/// `ours / theirs - 1`: +0.25 means ours is 25% higher.
pub fn relative_gap(ours: f64, theirs: f64) -> f64 {
    ours / theirs - 1.0
}

/// A level shift between the first and the second half of a run of batches: the machine
/// changed under the measurement (a frequency step, a neighbour starting, a migration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelShift {
    /// Median of the first half.
    pub first: f64,
    /// Median of the second half.
    pub second: f64,
    /// The Mann–Whitney z score of the halves (normal approximation, no tie correction);
    /// positive when the second half is higher.
    pub z: f64,
}

/// Smallest relative gap between the halves' medians that counts as a shift.
pub const SHIFT_MIN_GAP: f64 = 0.10;

/// |z| a shift must pass: two-sided p < 0.01.
pub const SHIFT_Z: f64 = 2.576;

/// Tests `batches` (in measured order) for a level shift: the first half against the second
/// by a Mann–Whitney U test, which needs no assumption about the distribution; a shift when
/// |z| > [`SHIFT_Z`] and the medians differ by more than [`SHIFT_MIN_GAP`]. With 5 batches a
/// side that means every batch of one half is above every batch of the other. `None` with
/// fewer than 8 finite batches, or when there is no shift.
pub fn level_shift(batches: &[f64]) -> Option<LevelShift> {
    let finite: Vec<f64> = batches.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.len() < 8 {
        return None;
    }
    let (a, b) = finite.split_at(finite.len() / 2);
    let u: f64 = a
        .iter()
        .map(|x| {
            b.iter()
                .map(|y| match x.total_cmp(y) {
                    std::cmp::Ordering::Less => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Greater => 0.0,
                })
                .sum::<f64>()
        })
        .sum();
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let sd = (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
    let z = (u - n1 * n2 / 2.0) / sd;
    let (first, second) = (median(a), median(b));
    let gap = (second - first).abs() / first.min(second).abs().max(f64::MIN_POSITIVE);
    (z.abs() > SHIFT_Z && gap > SHIFT_MIN_GAP).then_some(LevelShift { first, second, z })
}

/// A 95 % bootstrap confidence interval for `median(a) / median(b)`: 2 000 resamples of each
/// side with replacement, the 2.5th and 97.5th percentiles of the ratios (the percentile
/// method). Seeded from the data, so the same figures always give the same interval. `None`
/// when either side has fewer than 3 finite, positive values.
pub fn ratio_ci(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    let clean = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .copied()
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect()
    };
    let (a, b) = (clean(a), clean(b));
    if a.len() < 3 || b.len() < 3 {
        return None;
    }
    let seed = a.iter().chain(&b).fold(0x9e37_79b9_7f4a_7c15u64, |h, x| {
        (h ^ x.to_bits()).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut resample = |v: &[f64], buf: &mut Vec<f64>| {
        buf.clear();
        buf.extend((0..v.len()).map(|_| v[rng.usize(..v.len())]));
        median(buf)
    };
    let (mut ba, mut bb) = (Vec::with_capacity(a.len()), Vec::with_capacity(b.len()));
    let mut ratios: Vec<f64> = (0..2_000)
        .map(|_| resample(&a, &mut ba) / resample(&b, &mut bb))
        .collect();
    ratios.sort_by(f64::total_cmp);
    Some((
        percentile_sorted(&ratios, 2.5),
        percentile_sorted(&ratios, 97.5),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_between_halves_is_a_level_shift_and_noise_is_not() {
        let step = [10.0, 10.2, 9.9, 10.1, 10.0, 13.0, 13.1, 12.9, 13.2, 13.0];
        let shift = level_shift(&step).expect("every later batch is 30 % slower");
        assert!((shift.first - 10.0).abs() < 1e-9 && (shift.second - 13.0).abs() < 1e-9);
        assert!(shift.z > SHIFT_Z, "positive: the second half is higher");
        let noise = [10.0, 13.0, 9.9, 12.9, 10.1, 13.1, 10.0, 13.2, 10.2, 13.0];
        assert_eq!(
            level_shift(&noise),
            None,
            "alternating noise is not a shift"
        );
        let small = [10.0, 10.0, 10.0, 10.0, 10.0, 10.5, 10.5, 10.5, 10.5, 10.5];
        assert_eq!(level_shift(&small), None, "a 5 % step is under the gap");
        assert_eq!(level_shift(&step[..6]), None, "too few batches to tell");
    }

    #[test]
    fn the_ratio_interval_brackets_the_ratio_and_is_reproducible() {
        let a = [20.0, 21.0, 19.0, 20.5, 19.5, 20.2, 19.8, 20.1, 20.0, 19.9];
        let b = [10.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.0, 10.3, 9.7];
        let (lo, hi) = ratio_ci(&a, &b).expect("enough values");
        assert!(lo < 2.0 && 2.0 < hi, "{lo}–{hi}");
        assert!(
            lo > 1.8 && hi < 2.2,
            "tight data, tight interval: {lo}–{hi}"
        );
        assert_eq!(ratio_ci(&a, &b), Some((lo, hi)), "seeded by the data");
        let wide = [5.0, 40.0, 10.0, 30.0, 20.0];
        let (wlo, whi) = ratio_ci(&wide, &b).expect("enough values");
        assert!(
            wlo < 1.0 && whi > 2.0,
            "scattered data, wide interval: {wlo}–{whi}"
        );
        assert_eq!(ratio_ci(&a[..2], &b), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let s: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&s, 0.0), 0.0);
        assert_eq!(percentile_sorted(&s, 1.0), 1.0);
        assert_eq!(percentile_sorted(&s, 99.0), 99.0);
        assert_eq!(percentile_sorted(&s, 100.0), 100.0);
        assert_eq!(percentile_sorted(&[10.0, 20.0], 50.0), 15.0);
    }

    #[test]
    fn a_zero_mad_falls_back_to_the_mean_absolute_deviation() {
        // Six equal samples make the MAD 0; the two others differ by 1 and by 20. A zero MAD
        // would flag both; the mean absolute deviation (21 / 8) flags only the far one.
        let samples = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 11.0, 30.0];
        assert_eq!(mad(&samples), 0.0);
        assert_eq!(count_outliers(&samples), 1);
        // All equal: nothing stands out.
        assert_eq!(count_outliers(&[4.0; 9]), 0);
    }

    #[test]
    fn mad_matches_a_hand_computation() {
        // median 3; deviations 2 1 0 1 6 -> sorted 0 1 1 2 6 -> MAD 1.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 9.0]), 1.0);
    }

    #[test]
    fn one_far_sample_is_flagged_but_kept() {
        let mut samples = vec![10.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10.0];
        samples.push(50.0);
        let s = summarize(&samples).expect("samples are not empty");
        assert_eq!(s.outliers, 1);
        assert_eq!(s.samples, 11);
        assert_eq!(s.max, 50.0, "the outlier stays in the data");
        assert_eq!(s.median, 10.0);
    }

    #[test]
    fn no_outliers_in_tight_data_and_zero_mad_flags_only_differing_samples() {
        assert_eq!(count_outliers(&[1.0, 2.0, 3.0, 4.0, 5.0]), 0);
        assert_eq!(count_outliers(&[7.0, 7.0, 7.0, 7.0, 8.0]), 1);
        assert_eq!(count_outliers(&[7.0; 5]), 0);
    }

    #[test]
    fn summary_of_nothing_is_none() {
        assert!(summarize(&[]).is_none());
        let h = Histogram::<u64>::new(3).expect("3 significant digits are valid");
        assert!(summarize_histogram(&h).is_none());
    }

    #[test]
    fn histogram_summary_agrees_with_exact_summary() {
        let mut h = Histogram::<u64>::new(3).expect("3 significant digits are valid");
        let mut exact = Vec::new();
        for i in 0..1000u64 {
            let v = 1000 + i % 100;
            h.record(v).expect("value fits the auto-resizing histogram");
            exact.push(v as f64);
        }
        h.record(1_000_000)
            .expect("value fits the auto-resizing histogram");
        exact.push(1_000_000.0);
        let a = summarize_histogram(&h).expect("histogram is not empty");
        let b = summarize(&exact).expect("samples are not empty");
        assert!((a.median - b.median).abs() <= 2.0, "{a:?} vs {b:?}");
        assert!((a.p99 - b.p99).abs() <= 2.0, "{a:?} vs {b:?}");
        assert_eq!(a.min, b.min);
        assert_eq!(a.samples, 1001);
        assert_eq!(a.outliers, 1);
        assert_eq!(b.outliers, 1);
    }

    #[test]
    fn scaling_keeps_counts() {
        let s = summarize(&[2.0, 4.0, 6.0])
            .expect("samples are not empty")
            .scaled(0.5);
        assert_eq!(s.median, 2.0);
        assert_eq!(s.max, 3.0);
        assert_eq!(s.samples, 3);
    }

    #[test]
    fn median_and_spread_needs_ten_finite_samples_for_a_spread() {
        let xs: Vec<f64> = (1..=11).map(f64::from).collect();
        let (m, s) = median_and_spread(&xs);
        assert_eq!(m, 6.0);
        let s = s.expect("11 samples give a spread");
        assert_eq!((s.min, s.max, s.samples), (1.0, 11.0, 11));
        assert_eq!(median_and_spread(&[3.0, 1.0, 2.0]), (2.0, None));
        assert_eq!(median_and_spread(&[3.0, f64::NAN, 1.0]), (2.0, None));
        assert!(median_and_spread(&[]).0.is_nan());
        let outlier = [
            8.0, 9.0, 9.5, 10.0, 10.5, 11.0, 12.0, 9.0, 11.0, 10.0, 1000.0,
        ];
        let s = median_and_spread(&outlier).1.expect("spread");
        assert_eq!((s.outliers, s.max), (1, 1000.0), "flagged, not dropped");
    }

    #[test]
    fn relative_gap_is_signed() {
        assert!((relative_gap(1.25, 1.0) - 0.25).abs() < 1e-12);
        assert!((relative_gap(0.8, 1.0) + 0.2).abs() < 1e-12);
    }
}
