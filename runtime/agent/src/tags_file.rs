//! Serf's tags file (`-tags-file`): a JSON object of string to string, e.g. `{"role":"web"}`,
//! as Serf's agent writes it. Only that shape is parsed (a hand-written parser, no JSON crate);
//! `null` is no tags, as Go's decoder allows, and a `null` value is an empty string.

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
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    let tags = if p.eat_literal("null") {
        BTreeMap::new()
    } else {
        p.object()?
    };
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected data after the object"));
    }
    Ok(tags)
}

/// Just enough JSON for an object of strings.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn eat_literal(&mut self, lit: &str) -> bool {
        let hit = self.s[self.i..].starts_with(lit.as_bytes());
        if hit {
            self.i += lit.len();
        }
        hit
    }

    fn object(&mut self) -> std::result::Result<BTreeMap<String, String>, String> {
        if !self.eat(b'{') {
            return Err(self.err("expected a JSON object"));
        }
        let mut out = BTreeMap::new();
        self.skip_ws();
        if self.eat(b'}') {
            return Ok(out);
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(b':') {
                return Err(self.err("expected ':'"));
            }
            self.skip_ws();
            let value = if self.eat_literal("null") {
                String::new()
            } else {
                self.string()?
            };
            out.insert(key, value);
            self.skip_ws();
            if self.eat(b'}') {
                return Ok(out);
            }
            if !self.eat(b',') {
                return Err(self.err("expected ',' or '}'"));
            }
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        if !self.eat(b'"') {
            return Err(self.err("expected a string"));
        }
        let mut out = String::new();
        loop {
            let start = self.i;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.i += 1;
            }
            // The input is a &str and we stopped at ASCII bytes, so this is whole characters.
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default());
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn escape(&mut self) -> std::result::Result<char, String> {
        let Some(b) = self.peek() else {
            return Err(self.err("unterminated escape"));
        };
        self.i += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => return Err(self.err("invalid escape")),
        })
    }

    /// `\uXXXX`, with surrogate pairs; a lone surrogate becomes U+FFFD, as in Go.
    fn unicode_escape(&mut self) -> std::result::Result<char, String> {
        let hi = self.hex4()?;
        if !(0xD800..0xDC00).contains(&hi) {
            return Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'));
        }
        let rest = &self.s[self.i..];
        if rest.starts_with(b"\\u") {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.i = save;
        }
        Ok('\u{FFFD}')
    }

    fn hex4(&mut self) -> std::result::Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.i += 4;
        Ok(digits)
    }
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
