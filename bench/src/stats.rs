//! Small statistics over samples: median and 95th percentile (nearest rank), min, max.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

impl Summary {
    /// Summary of `samples` (any order); `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            n,
            min: sorted[0],
            median,
            p95: nearest_rank(&sorted, 0.95),
            max: sorted[n - 1],
        })
    }

    /// "median 1.23 ms, p95 2.34 ms (n = 50)" with `digits` decimals.
    pub fn describe(&self, unit: &str, digits: usize) -> String {
        format!(
            "median {:.digits$} {unit}, p95 {:.digits$} {unit} (min {:.digits$}, max {:.digits$}, n = {})",
            self.median, self.p95, self.min, self.max, self.n
        )
    }
}

/// The smallest sample such that at least `q` of the samples are at or below it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds as a float, to the microsecond.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p95_by_nearest_rank() {
        let samples: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!((s.n, s.min, s.median, s.p95, s.max), (20, 1.0, 10.5, 19.0, 20.0));
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.p95), (2.0, 3.0));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn describes_with_units() {
        let s = Summary::of(&[1.0, 2.0]).unwrap();
        assert_eq!(
            s.describe("ms", 1),
            "median 1.5 ms, p95 2.0 ms (min 1.0, max 2.0, n = 2)"
        );
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }
}
