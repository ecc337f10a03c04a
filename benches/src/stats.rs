//! Latency percentiles from an HDR histogram: recording a sample costs a bucket
//! increment, percentiles are read from the buckets (within 0.1 % of the exact value,
//! three significant digits), and nothing is sorted. The count, mean and max are exact.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant decimal digits the histogram keeps: percentiles within 0.1 %.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Mean, percentiles and max of a set of samples, in the unit the caller chose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Latencies, recorded in nanoseconds into an auto-resizing HDR histogram.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    /// Exact sum of the samples, ns.
    sum_ns: u128,
    /// Exact largest sample, ns.
    max_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new(SIGNIFICANT_DIGITS)
                .expect("3 significant digits is a valid precision"),
            sum_ns: 0,
            max_ns: 0,
        }
    }

    /// Records one latency (saturating at `u64::MAX` ns, some 584 years).
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        // The histogram grows to fit the value; should it ever fail to, the value is
        // clamped to the largest one it tracks.
        if self.hist.record(ns).is_err() {
            self.hist.saturating_record(ns);
        }
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds every sample of `other` (another client's latencies, say).
    pub fn add(&mut self, other: &LatencyHistogram) {
        self.hist
            .add(&other.hist)
            .expect("auto-resizing histograms of one precision always add");
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The `q`-quantile (0..=1) in nanoseconds, 0 when empty.
    fn quantile_ns(&self, q: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        // The bucket's highest equivalent value, never above the largest sample.
        self.hist.value_at_quantile(q).min(self.max_ns) as f64
    }

    /// The mean in microseconds, 0 when empty.
    pub fn mean_us(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.sum_ns as f64 / self.len() as f64 / 1e3
    }

    /// The `q`-quantile (0..=1) in microseconds, 0 when empty.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.quantile_ns(q) / 1e3
    }

    /// The `q`-quantile (0..=1) in milliseconds, 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.quantile_ns(q) / 1e6
    }

    /// Count, mean, percentiles and max, in milliseconds.
    pub fn summary_ms(&self) -> Summary {
        if self.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.len() as usize,
            mean: self.sum_ns as f64 / self.len() as f64 / 1e6,
            p50: self.quantile_ms(0.5),
            p90: self.quantile_ms(0.9),
            p99: self.quantile_ms(0.99),
            max: self.max_ns as f64 / 1e6,
        }
    }
}

/// One histogram that many clients record into. Clients of a run share a thread, so
/// its lock is never contended; a histogram per client would spread hundreds of them,
/// some 200 KB each, over the clients' cache, and every sample would cost a cache miss.
#[derive(Debug, Default)]
pub struct SharedHistogram(std::sync::Mutex<LatencyHistogram>);

impl SharedHistogram {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(latency);
    }

    /// Takes what was recorded, leaving it empty.
    pub fn take(&self) -> LatencyHistogram {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Extend<Duration> for LatencyHistogram {
    fn extend<I: IntoIterator<Item = Duration>>(&mut self, iter: I) {
        for latency in iter {
            self.record(latency);
        }
    }
}

impl FromIterator<Duration> for LatencyHistogram {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        let mut h = Self::new();
        h.extend(iter);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `actual` is within the histogram's precision (0.1 %) of `expected`.
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 1e-3
    }

    #[test]
    fn summary_of_known_samples() {
        // 1 ms, 2 ms, ..., 100 ms, in reverse order: nothing depends on the order.
        let h: LatencyHistogram = (1..=100).rev().map(Duration::from_millis).collect();
        let s = h.summary_ms();
        assert_eq!(s.count, 100);
        assert_eq!(s.mean, 50.5);
        assert_eq!(s.max, 100.0);
        assert!(close(s.p50, 50.0), "p50 {}", s.p50);
        assert!(close(s.p90, 90.0), "p90 {}", s.p90);
        assert!(close(s.p99, 99.0), "p99 {}", s.p99);
        assert_eq!(LatencyHistogram::new().summary_ms(), Summary::default());
    }

    #[test]
    fn percentiles_of_many_samples_stay_within_a_tenth_of_a_percent() {
        // 1..=100_000 µs: the exact nearest-rank p50 is 50_000 µs, p99 99_000 µs.
        let h: LatencyHistogram = (1..=100_000).map(Duration::from_micros).collect();
        assert_eq!(h.len(), 100_000);
        assert!(
            close(h.quantile_us(0.5), 50_000.0),
            "{}",
            h.quantile_us(0.5)
        );
        assert!(
            close(h.quantile_us(0.99), 99_000.0),
            "{}",
            h.quantile_us(0.99)
        );
        assert_eq!(h.quantile_us(1.0), 100_000.0);
    }

    #[test]
    fn histograms_add_up() {
        let low: LatencyHistogram = (1..=50).map(Duration::from_millis).collect();
        let high: LatencyHistogram = (51..=100).map(Duration::from_millis).collect();
        let mut all = low.clone();
        all.add(&high);
        let whole: LatencyHistogram = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(all.summary_ms(), whole.summary_ms());
        assert_eq!(low.summary_ms().max, 50.0);
    }
}
