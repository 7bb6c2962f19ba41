//! Serf's tags file (`-tags-file`): a JSON object of string to string, e.g. `{"role":"web"}`,
//! as Serf's agent writes it, read as Go's decoder reads it ([`crate::conventions::json`]):
//! `null` is no tags, a `null` value is an empty string, and a later duplicate key wins.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Reads the tags file at `path`; a file that does not exist holds no tags, as for Serf.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::TagsFile(format!("reading {}: {e}", path.display()))),
    };
    parse(&text).map_err(|e| Error::TagsFile(format!("{}: {e}", path.display())))
}

/// Parses a tags file's text. Later duplicates of a key win, as with Go's decoder.
pub fn parse(text: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let tags: Option<BTreeMap<String, Option<String>>> =
        crate::conventions::json::from_str(text).map_err(|e| e.to_string())?;
    Ok(tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_what_serf_writes() {
        // Serf writes the file with json.MarshalIndent(tags, "", "  ").
        let text = "{\n  \"dc\": \"east\",\n  \"role\": \"web\"\n}";
        assert_eq!(parse(text), Ok(tags(&[("dc", "east"), ("role", "web")])));
        assert_eq!(parse(r#"{"role":"db"}"#), Ok(tags(&[("role", "db")])));
        assert_eq!(parse(" {} \n"), Ok(BTreeMap::new()));
        assert_eq!(parse("null"), Ok(BTreeMap::new()));
    }

    #[test]
    fn escapes_nulls_and_duplicates() {
        let text = r#"{"a":"x\"y\\z\u00e9\ud83d\ude00\n","b":null,"a2":"\ud800","c":"1","c":"2"}"#;
        assert_eq!(
            parse(text),
            Ok(tags(&[
                ("a", "x\"y\\zé😀\n"),
                ("a2", "\u{FFFD}"),
                ("b", ""),
                ("c", "2")
            ]))
        );
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "[\"a\"]",
            "{\"a\":1}",
            "{\"a\":\"b\"",
            "{\"a\" \"b\"}",
            "{\"a\":\"b\",}",
            "{\"a\":\"b\"} x",
            "{\"a\":\"\\q\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u+123\"}",
            "{\"a\":\"line\nbreak\"}",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn read_treats_missing_as_empty_and_names_the_file() {
        let path = std::env::temp_dir().join(format!("hearsay-tags-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&path);
        assert_eq!(read(&path).unwrap(), BTreeMap::new());
        std::fs::write(&path, "{\"role\":\"web\"}").unwrap();
        assert_eq!(read(&path).unwrap(), tags(&[("role", "web")]));
        std::fs::write(&path, "{").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        let _ = std::fs::remove_file(&path);
    }
}
