//! Serf's keyring file (`-keyring-file`): a JSON list of base64 keys, the primary first, read
//! as Go's decoder reads it (`null` is an empty list, a `null` element an empty string) and
//! written exactly as Serf writes it (`json.MarshalIndent(keys, "", "  ")`, no trailing
//! newline), with [`crate::conventions::json`]. The keys themselves are
//! [`hearsay_swim::Keyring`]'s.

use hearsay_swim::{Error, Keyring, Result};

/// Parses the file's text into its list of (base64) keys.
pub fn parse(text: &str) -> Result<Vec<String>> {
    let keys: Option<Vec<Option<String>>> =
        crate::conventions::json::from_str(text).map_err(|e| Error::KeyFile(e.to_string()))?;
    Ok(keys
        .unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// Formats keys as Serf writes the file.
pub fn format(keys: &[String]) -> String {
    crate::conventions::json::to_string_pretty(keys).expect("a list of strings always serializes")
}

/// The keyring a keyring file holds. An empty list is refused, as Serf refuses it.
pub fn decode(text: &str) -> Result<Keyring> {
    Keyring::from_base64_keys(&parse(text)?)
}

/// The keyring file Serf would write for `keyring`.
pub fn encode(keyring: &Keyring) -> String {
    format(&keyring.to_base64_keys())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keyring_file_matches_serf() {
        let kr = Keyring::new(vec![7; 16], vec![vec![0; 32]]).unwrap();
        let text = encode(&kr);
        assert_eq!(
            text,
            "[\n  \"BwcHBwcHBwcHBwcHBwcHBw==\",\n  \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n]"
        );
        assert_eq!(decode(&text).unwrap(), kr);
        assert_eq!(format(&[]), "[]");
        assert_eq!(
            format(&["a<b>&\"\\\n\u{1}".into()]),
            "[\n  \"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001\"\n]"
        );
    }

    #[test]
    fn keyring_file_parser() {
        assert_eq!(parse(" [ ] ").unwrap(), Vec::<String>::new());
        assert_eq!(parse("null").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse("[\"a\",\t\"b\\/c\" ,\r\n\"\\u00e9\\ud83d\\ude00\\ud800x\", null]").unwrap(),
            ["a", "b/c", "é😀\u{FFFD}x", ""]
        );
        for bad in [
            "",
            "[",
            "[\"a\"",
            "[\"a\",]",
            "[1]",
            "{}",
            "[\"a\"] x",
            "[\"a\nb\"]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"abc",
            "[\"\\",
        ] {
            assert!(matches!(parse(bad), Err(Error::KeyFile(_))), "{bad:?}");
        }
        assert!(matches!(decode("[]"), Err(Error::KeyFile(_))));
        assert!(matches!(decode("null"), Err(Error::KeyFile(_))));
        assert_eq!(
            decode("[\"BwcHBwcHBwcHBwcHBwcHBw==\", null]"),
            Err(Error::BadKeyLength(0))
        );
    }

    fn any_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 16),
            proptest::collection::vec(any::<u8>(), 24),
            proptest::collection::vec(any::<u8>(), 32),
        ]
    }

    proptest! {
        #[test]
        fn keyring_file_round_trip(keys in proptest::collection::vec(any_key(), 1..4)) {
            let kr = Keyring::new(keys[0].clone(), keys[1..].to_vec()).unwrap();
            prop_assert_eq!(decode(&encode(&kr)).unwrap(), kr);
        }

        #[test]
        fn keyring_file_strings_round_trip(
            strings in proptest::collection::vec(any::<String>(), 0..4),
        ) {
            prop_assert_eq!(parse(&format(&strings)).unwrap(), strings);
        }

        #[test]
        fn keyring_file_parser_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
