//! Go's duration syntax (`30s`, `1m30s`, `500ms`), which Serf's flags and config files use,
//! and [`GoDuration`], a config file's duration value.

use serde::de::{Deserialize, Deserializer, Error, Visitor};
use std::fmt;
use std::time::Duration;

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers with units
/// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (`1h30m`, `2.5s`); `0` alone needs no unit.
/// Negative durations are refused: no setting here has a use for one.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (expected e.g. 30s, 500ms, 1m30s)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A duration in a config file: a string in Go's syntax, as Serf's JSON has it
/// (`"retry_interval": "30s"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\"")
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<GoDuration, E> {
                parse_go_duration(s).map(GoDuration).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        for bad in ["", "30", "s", "-1s", "1x", "1.2.3s", "ms5"] {
            assert!(d(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn durations_in_json_and_toml() {
        let json = |t: &str| serde_json::from_str::<GoDuration>(t).map_err(|e| e.to_string());
        assert_eq!(json("\"1m30s\""), Ok(GoDuration(Duration::from_secs(90))));
        assert_eq!(
            json("\"250ms\""),
            Ok(GoDuration(Duration::from_millis(250)))
        );
        let e = json("\"5\"").unwrap_err();
        assert!(e.starts_with("invalid duration \"5\""), "{e}");
        let e = json("5").unwrap_err();
        assert!(
            e.contains("expected a duration string such as \"30s\""),
            "{e}"
        );
        #[derive(serde::Deserialize)]
        struct T {
            d: GoDuration,
        }
        let t: T = toml::from_str("d = \"2h\"").unwrap();
        assert_eq!(t.d.0, Duration::from_secs(7200));
    }
}
