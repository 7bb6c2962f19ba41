//! Output the way `serf` prints it: `columnize.SimpleFormat` tables and Go's
//! `json.MarshalIndent(v, "", "  ")`.

/// Aligns `|`-separated rows into columns joined by two spaces; cells are trimmed and the
/// last column is not padded (ryanuber/columnize's defaults).
pub fn columnize(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let n = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(n),
                None => widths.push(n),
            }
        }
    }
    let mut out = String::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out.trim().to_owned()
}

/// A JSON value, printed as Go's encoder prints it (object keys in the order given, which
/// callers keep sorted as Go sorts map keys).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    /// A number, already formatted.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object from a sorted string map.
    pub fn string_map(m: &std::collections::BTreeMap<String, String>) -> Self {
        Json::Obj(
            m.iter()
                .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
                .collect(),
        )
    }

    /// `json.MarshalIndent(v, "", "  ")`.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = |out: &mut String, d: usize| {
            out.push('\n');
            out.push_str(&"  ".repeat(d));
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => hearsay_swim::json::push_string(out, s),
            Json::Arr(items) if items.is_empty() => out.push_str("[]"),
            Json::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    item.write(out, depth + 1);
                }
                pad(out, depth);
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    hearsay_swim::json::push_string(out, k);
                    out.push_str(": ");
                    v.write(out, depth + 1);
                }
                pad(out, depth);
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_like_columnize() {
        let lines = vec![
            "a|127.0.0.1:1|alive|".to_owned(),
            "long-name|x|failed|r=1".to_owned(),
        ];
        assert_eq!(
            columnize(&lines),
            "a          127.0.0.1:1  alive   \nlong-name  x            failed  r=1"
        );
    }

    #[test]
    fn json_matches_go_marshal_indent() {
        let v = Json::Obj(vec![
            (
                "a".into(),
                Json::Arr(vec![Json::Str("x<".into()), Json::Num("1".into())]),
            ),
            ("b".into(), Json::Obj(vec![])),
            ("c".into(), Json::Null),
        ]);
        assert_eq!(
            v.pretty(),
            "{\n  \"a\": [\n    \"x\\u003c\",\n    1\n  ],\n  \"b\": {},\n  \"c\": null\n}"
        );
    }
}
