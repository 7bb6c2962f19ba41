//! Output the way `serf` prints it: `columnize.SimpleFormat` tables and Go's
//! `json.MarshalIndent(v, "", "  ")` (on `hearsay_agent::conventions::json`).

/// Aligns `|`-separated rows into columns joined by two spaces; cells are trimmed and the
/// last column is not padded (ryanuber/columnize's defaults).
pub(super) fn columnize(lines: &[String]) -> String {
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

/// `value` as `serf` prints `-format=json`: Go's `json.MarshalIndent(v, "", "  ")`. The
/// callers' types follow Go's: structs with the fields in the order Serf declares them, maps as
/// `BTreeMap`s (Go sorts map keys), `None` for Go's `nil` slices (`null`).
pub(super) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, String> {
    hearsay_agent::conventions::json::to_string_pretty(value)
        .map_err(|e| format!("Error encoding JSON: {e}"))
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
        #[derive(serde::Serialize)]
        struct V {
            a: (&'static str, u32),
            b: std::collections::BTreeMap<String, String>,
            c: Option<Vec<String>>,
        }
        let v = V {
            a: ("x<", 1),
            b: Default::default(),
            c: None,
        };
        assert_eq!(
            json(&v).unwrap(),
            "{\n  \"a\": [\n    \"x\\u003c\",\n    1\n  ],\n  \"b\": {},\n  \"c\": null\n}"
        );
    }
}
