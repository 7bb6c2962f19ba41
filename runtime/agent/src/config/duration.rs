//! [`GoDuration`], a config file's duration value in Go's syntax (`30s`, `1m30s`, `500ms`;
//! the parser is [`crate::conventions::parse_go_duration`]).

use crate::conventions::parse_go_duration;
use serde::de::{Deserialize, Deserializer, Error, Visitor};
use std::fmt;
use std::time::Duration;

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
