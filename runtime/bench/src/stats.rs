//! Summaries of repeated measurements (median, min–max, p10–p90) and how they are printed.

/// A set of samples reduced to its median and spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
}

impl Summary {
    /// The summary of `samples`, or `None` when there are none.
    pub(crate) fn of(samples: &[f64]) -> Option<Self> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        Some(Self {
            n: s.len(),
            median: percentile(&s, 0.5),
            min: s[0],
            max: s[s.len() - 1],
            p10: percentile(&s, 0.1),
            p90: percentile(&s, 0.9),
        })
    }
}

/// Linear interpolation between the closest ranks of a sorted, non-empty slice.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// How a figure's samples are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Samples in seconds; printed in s, ms below one second, µs below one millisecond.
    Secs,
    /// Samples in KiB.
    KiB,
    /// Samples in bytes; printed in decimal units: B, KB, MB.
    Bytes,
    /// Plain numbers with the given suffix.
    Count(&'static str),
}

impl Unit {
    /// The scale a value is printed in: (divisor, suffix, decimals).
    fn scale(self, x: f64) -> (f64, &'static str, usize) {
        match self {
            Unit::Secs if x.abs() < 1e-3 => (1e-6, " µs", 0),
            Unit::Secs if x.abs() < 1.0 => (1e-3, " ms", 1),
            Unit::Secs => (1.0, " s", 2),
            Unit::KiB if x >= 10.0 * 1024.0 * 1024.0 => (1024.0 * 1024.0, " GiB", 1),
            Unit::KiB if x >= 10240.0 => (1024.0, " MiB", 1),
            Unit::KiB => (1.0, " KiB", 0),
            Unit::Bytes if x >= 1e6 => (1e6, " MB", 2),
            Unit::Bytes if x >= 1e3 => (1e3, " KB", 1),
            Unit::Bytes => (1.0, " B", 0),
            Unit::Count(suffix) if x >= 100.0 => (1.0, suffix, 0),
            Unit::Count(suffix) if x.abs() >= 1.0 => (1.0, suffix, 2),
            Unit::Count(suffix) => (1.0, suffix, 4),
        }
    }

    /// One value with its unit.
    pub(crate) fn fmt(self, x: f64) -> String {
        let (div, suffix, dec) = self.scale(x);
        format!("{:.*}{suffix}", dec, x / div)
    }

    /// `median unit (min–max; p10–p90 a–b; n=k)`, the spread in the median's unit, or `—`.
    pub(crate) fn fmt_summary(self, s: Option<&Summary>) -> String {
        let Some(s) = s else {
            return "—".to_owned();
        };
        if s.n == 1 {
            return format!("{} (n=1)", self.fmt(s.median));
        }
        let (div, suffix, dec) = self.scale(s.median);
        let v = |x: f64| format!("{:.*}", dec, x / div);
        format!(
            "{}{suffix} ({}–{}; p10–p90 {}–{}; n={})",
            v(s.median),
            v(s.min),
            v(s.max),
            v(s.p10),
            v(s.p90),
            s.n
        )
    }
}

/// hearsay's median over serf's, printed as `0.87×`.
pub(crate) fn ratio(hearsay: Option<&Summary>, serf: Option<&Summary>) -> String {
    match (hearsay, serf) {
        (Some(h), Some(s)) if s.median > 0.0 => format!("{:.2}×", h.median / s.median),
        _ => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (5, 3.0, 1.0, 5.0));
        assert!((s.p10 - 1.4).abs() < 1e-9 && (s.p90 - 4.6).abs() < 1e-9);
        assert_eq!(Summary::of(&[2.0, 4.0]).unwrap().median, 3.0);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn formatting() {
        assert_eq!(Unit::Secs.fmt(0.1234), "123.4 ms");
        assert_eq!(Unit::Secs.fmt(0.000_108_4), "108 µs");
        assert_eq!(Unit::Secs.fmt(6.5), "6.50 s");
        assert_eq!(Unit::KiB.fmt(20480.0), "20.0 MiB");
        assert_eq!(Unit::KiB.fmt(20.0 * 1024.0 * 1024.0), "20.0 GiB");
        assert_eq!(Unit::Bytes.fmt(72_512.0), "72.5 KB");
        assert_eq!(Unit::Bytes.fmt(18_345_678.0), "18.35 MB");
        assert_eq!(Unit::Bytes.fmt(512.0), "512 B");
        let s = Summary::of(&[0.1, 0.2, 1.5]).unwrap();
        assert_eq!(
            Unit::Secs.fmt_summary(Some(&s)),
            "200.0 ms (100.0–1500.0; p10–p90 120.0–1240.0; n=3)"
        );
        let h = Summary::of(&[1.0]).unwrap();
        let s = Summary::of(&[2.0]).unwrap();
        assert_eq!(ratio(Some(&h), Some(&s)), "0.50×");
        assert_eq!(ratio(Some(&h), None), "—");
    }
}
