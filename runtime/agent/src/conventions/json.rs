//! Go's `encoding/json`, as Serf writes its files and `serf` prints `-format=json`, on
//! serde_json: [`to_string`] is `json.Marshal`, [`to_string_pretty`] is
//! `json.MarshalIndent(v, "", "  ")`, and [`from_str`] reads as `json.Unmarshal` does.
//!
//! serde_json's structure and number output already match Go's; only strings differ, so
//! [`GoFormatter`] writes them as Go's encoder does: HTML-safe (`<`, `>`, `&` as `\u003c`,
//! `\u003e`, `\u0026`), U+2028 and U+2029 escaped, `\n`, `\r`, `\t` short and every other
//! control character as `\u00XX` (`\b` and `\f` too: Go before 1.22, which the `serf` we test
//! against is built with). Go sorts map keys and keeps struct fields in declaration order: pass
//! a `BTreeMap` for a map and a struct (in Go's field order) for a struct.
//!
//! Reading, serde_json is stricter than Go in one way that matters for Serf's files: Go turns
//! a lone UTF-16 surrogate escape (`"\ud800"`) into U+FFFD where serde_json refuses the text,
//! so [`from_str`] replaces those escapes first.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, PrettyFormatter};
use std::borrow::Cow;
use std::io;

/// A serde_json [`Formatter`] that writes strings as Go's `encoding/json` does, and the
/// structure (compact or indented) as `inner` does.
#[derive(Debug, Clone)]
pub struct GoFormatter<F> {
    inner: F,
}

impl GoFormatter<CompactFormatter> {
    /// `json.Marshal`'s layout: no whitespace.
    pub fn compact() -> Self {
        Self {
            inner: CompactFormatter,
        }
    }
}

impl GoFormatter<PrettyFormatter<'static>> {
    /// `json.MarshalIndent(v, "", "  ")`'s layout: two spaces per level, `": "` after keys.
    pub fn pretty() -> Self {
        Self {
            inner: PrettyFormatter::with_indent(b"  "),
        }
    }
}

impl<F: Formatter> Formatter for GoFormatter<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json escapes quotes, backslashes and control characters itself (through
        // `write_char_escape`); Go also escapes these.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let text: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            // Go never escapes '/'.
            CharEscape::Solidus => b"/",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::AsciiControl(b) => return write!(writer, "\\u{b:04x}"),
        };
        writer.write_all(text)
    }

    // The layout is `inner`'s.

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_key(w)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

fn write<T: Serialize + ?Sized, F: Formatter>(
    value: &T,
    formatter: GoFormatter<F>,
) -> serde_json::Result<String> {
    let mut out = Vec::new();
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// `value` as Go's `json.Marshal` writes it.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    write(value, GoFormatter::compact())
}

/// `value` as Go's `json.MarshalIndent(value, "", "  ")` writes it (no trailing newline).
pub fn to_string_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    write(value, GoFormatter::pretty())
}

/// Reads `text` as Go's `json.Unmarshal` would (see the module's notes).
pub fn from_str<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_str(&replace_lone_surrogates(text))
}

/// The four hex digits at `at` as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// `text` with every `\uXXXX` escape of a UTF-16 surrogate that is not half of a pair turned
/// into `\ufffd`, as Go's decoder reads it. Anything else, valid or not, is left for the parser.
fn replace_lone_surrogates(text: &str) -> Cow<'_, str> {
    const HIGH: std::ops::Range<u32> = 0xD800..0xDC00;
    const LOW: std::ops::Range<u32> = 0xDC00..0xE000;
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\` and the byte after it, or `\uXXXX`.
        let unit = match bytes.get(i + 1) {
            Some(b'u') => hex4(bytes, i + 2),
            _ => None,
        };
        let Some(unit) = unit else {
            i += 2;
            continue;
        };
        let pair = HIGH.contains(&unit)
            && bytes.get(i + 6) == Some(&b'\\')
            && bytes.get(i + 7) == Some(&b'u')
            && hex4(bytes, i + 8).is_some_and(|low| LOW.contains(&low));
        if pair {
            i += 12;
        } else if HIGH.contains(&unit) || LOW.contains(&unit) {
            // `i` is at an ASCII byte, so on a character boundary.
            out.push_str(&text[copied..i]);
            out.push_str("\\ufffd");
            i += 6;
            copied = i;
        } else {
            i += 6;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Sample {
        b: Vec<&'static str>,
        a: BTreeMap<&'static str, Option<u32>>,
        empty: Vec<u8>,
        none: Option<Vec<u8>>,
        obj: BTreeMap<String, String>,
    }

    fn sample() -> Sample {
        Sample {
            b: vec!["x<", "y"],
            a: BTreeMap::from([("z", Some(1)), ("m", None)]),
            empty: vec![],
            none: None,
            obj: BTreeMap::new(),
        }
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let s =
            to_string("a<b>&\"\\/\n\r\t\u{1}\u{8}\u{c}\u{1f}\u{7f}é\u{2028}\u{2029}😀").unwrap();
        assert_eq!(
            s,
            "\"a\\u003cb\\u003e\\u0026\\\"\\\\/\\n\\r\\t\\u0001\\u0008\\u000c\\u001f\u{7f}é\\u2028\\u2029😀\""
        );
        assert_eq!(to_string("").unwrap(), "\"\"");
        assert_eq!(to_string("plain").unwrap(), "\"plain\"");
    }

    #[test]
    fn marshal_indent_layout() {
        assert_eq!(
            to_string_pretty(&sample()).unwrap(),
            "{\n  \"b\": [\n    \"x\\u003c\",\n    \"y\"\n  ],\n  \"a\": {\n    \"m\": null,\n    \"z\": 1\n  },\n  \"empty\": [],\n  \"none\": null,\n  \"obj\": {}\n}"
        );
        assert_eq!(to_string_pretty(&Vec::<String>::new()).unwrap(), "[]");
        assert_eq!(
            to_string_pretty(&["k1", "k2"]).unwrap(),
            "[\n  \"k1\",\n  \"k2\"\n]"
        );
    }

    #[test]
    fn marshal_layout() {
        assert_eq!(
            to_string(&sample()).unwrap(),
            r#"{"b":["x\u003c","y"],"a":{"m":null,"z":1},"empty":[],"none":null,"obj":{}}"#
        );
        let tags = BTreeMap::from([("role", "a&b"), ("dc", "x")]);
        assert_eq!(to_string(&tags).unwrap(), r#"{"dc":"x","role":"a\u0026b"}"#);
    }

    #[test]
    fn escaped_output_reads_back() {
        let text = "a<b>&\"\\\n\u{1}\u{2028}é😀";
        let s: String = from_str(&to_string(text).unwrap()).unwrap();
        assert_eq!(s, text);
    }

    #[test]
    fn lone_surrogates_read_as_the_replacement_character() {
        let s = |t: &str| from_str::<String>(t).unwrap();
        assert_eq!(s(r#""\ud83d\ude00""#), "😀");
        assert_eq!(s(r#""\ud800""#), "\u{FFFD}");
        assert_eq!(s(r#""\ud800x""#), "\u{FFFD}x");
        assert_eq!(s(r#""\udc00\ud800""#), "\u{FFFD}\u{FFFD}");
        assert_eq!(s(r#""\ud800\u0041""#), "\u{FFFD}A");
        assert_eq!(s(r#""\ud800\ud83d\ude00""#), "\u{FFFD}😀");
        assert_eq!(
            s(r#""é\\ud800""#),
            "é\\ud800",
            "an escaped backslash is not an escape"
        );
        assert_eq!(s(r#""\u00e9\/""#), "é/");
        assert!(matches!(
            replace_lone_surrogates(r#"["a", "\u00e9"]"#),
            Cow::Borrowed(_)
        ));
        for bad in [r#""\u12""#, r#""\x""#, r#""\"#, "\"a\nb\""] {
            assert!(from_str::<String>(bad).is_err(), "{bad:?}");
        }
    }
}
