//! Latency percentiles, figures rounded for the JSON report, and the merging of its fields.

use std::time::Duration;

use serde_json::{Value, json};

/// Percentiles of a sample.
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl Percentiles {
    /// Percentiles of `samples` (microseconds); None if empty.
    pub fn of(mut samples: Vec<u64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            Duration::from_micros(samples[((samples.len() - 1) as f64 * q).round() as usize])
        };
        Some(Self { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) })
    }

    /// `p50_ms`, `p90_ms`, `p99_ms` and `max_ms` of `samples` (all null if it is empty).
    pub fn json(samples: Vec<u64>) -> Value {
        let p = Self::of(samples);
        let field = |f: fn(&Self) -> Duration| p.as_ref().map(|p| ms(f(p)));
        json!({
            "p50_ms": field(|p| p.p50),
            "p90_ms": field(|p| p.p90),
            "p99_ms": field(|p| p.p99),
            "max_ms": field(|p| p.max),
        })
    }
}

/// Milliseconds, to the microsecond.
pub fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 3)
}

/// Seconds, to the millisecond.
pub fn secs(d: Duration) -> f64 {
    round(d.as_secs_f64(), 3)
}

/// KiB as MiB, to 1/100.
pub fn mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 2)
}

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Adds the fields of the object `from` to the object `into` (a field of both takes `from`'s).
pub fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}
