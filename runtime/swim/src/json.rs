//! Just enough JSON for Serf's small files, written by hand to keep the protocol crates free
//! of serde: the keyring file (an array of strings) and the tags file (an object of strings),
//! read as Go's decoder reads them and written as Go's encoder writes them.

use std::collections::BTreeMap;

/// Parses a JSON array of strings. `null` is an empty list and a `null` element an empty
/// string, as Go's decoder allows.
pub fn parse_string_array(text: &str) -> Result<Vec<String>, String> {
    parse_whole(text, "array", Vec::new(), |p| p.array())
}

/// Parses a JSON object of string values. `null` is an empty map and a `null` value an empty
/// string; a later duplicate key wins, as with Go's decoder.
pub fn parse_string_object(text: &str) -> Result<BTreeMap<String, String>, String> {
    parse_whole(text, "object", BTreeMap::new(), |p| p.object())
}

fn parse_whole<T>(
    text: &str,
    what: &str,
    null: T,
    value: impl FnOnce(&mut Parser<'_>) -> Result<T, String>,
) -> Result<T, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    let out = if p.eat_literal("null") {
        null
    } else {
        value(&mut p)?
    };
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.err(&format!("unexpected data after the {what}")));
    }
    Ok(out)
}

/// Appends `s` as a JSON string, escaping the way Go's encoder does.
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Just enough JSON for Serf's files: strings, arrays of strings, objects of strings.
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

    fn array(&mut self) -> Result<Vec<String>, String> {
        if !self.eat(b'[') {
            return Err(self.err("expected a JSON array"));
        }
        let mut out = Vec::new();
        self.skip_ws();
        if self.eat(b']') {
            return Ok(out);
        }
        loop {
            self.skip_ws();
            if self.eat_literal("null") {
                out.push(String::new());
            } else {
                out.push(self.string()?);
            }
            self.skip_ws();
            if self.eat(b']') {
                return Ok(out);
            }
            if !self.eat(b',') {
                return Err(self.err("expected ',' or ']'"));
            }
        }
    }

    fn object(&mut self) -> Result<BTreeMap<String, String>, String> {
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

    fn string(&mut self) -> Result<String, String> {
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
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), String> {
        let Some(b) = self.peek() else {
            return Err(self.err("unterminated escape"));
        };
        self.i += 1;
        let c = match b {
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
        };
        out.push(c);
        Ok(())
    }

    /// `\uXXXX`, joining surrogate pairs; a lone surrogate becomes U+FFFD, as in Go.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) && self.s[self.i..].starts_with(b"\\u") {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.i = save;
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.i += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.err("invalid \\u escape"))
    }
}
