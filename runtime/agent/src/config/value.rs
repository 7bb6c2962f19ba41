//! One value tree for both config formats (Serf's JSON and hearsay's TOML), so a single
//! decoder checks keys and types and names them the same way whatever the file's format.

/// A decoded config value, as the file gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// Keys in file order (later duplicates were already resolved by the parser).
    Map(Vec<(String, Value)>),
}

impl Value {
    /// What the value is, in the words an error message uses ("a string", "a list", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::List(_) => "a list",
            Self::Map(_) => "an object",
        }
    }

    /// Parses JSON text (Serf's config format).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self::from_serde_json(v))
    }

    fn from_serde_json(v: serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => Self::Null,
            J::Bool(b) => Self::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Self::Str(s),
            J::Array(a) => Self::List(a.into_iter().map(Self::from_serde_json).collect()),
            J::Object(o) => Self::Map(
                o.into_iter()
                    .map(|(k, v)| (k, Self::from_serde_json(v)))
                    .collect(),
            ),
        }
    }

    /// Parses TOML text (hearsay's own config format).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let t: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // TOML errors span several lines (a source excerpt); one line is enough here.
            let msg = e.message().to_owned();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {msg}")
                }
                None => msg,
            }
        })?;
        Ok(Self::from_toml_table(t))
    }

    fn from_toml_table(t: toml::Table) -> Self {
        Self::Map(
            t.into_iter()
                .map(|(k, v)| (k, Self::from_toml_value(v)))
                .collect(),
        )
    }

    fn from_toml_value(v: toml::Value) -> Self {
        use toml::Value as T;
        match v {
            T::String(s) => Self::Str(s),
            T::Integer(i) => Self::Int(i),
            T::Float(f) => Self::Float(f),
            T::Boolean(b) => Self::Bool(b),
            // No key takes a date; keep its text so the type error can show it.
            T::Datetime(d) => Self::Str(d.to_string()),
            T::Array(a) => Self::List(a.into_iter().map(Self::from_toml_value).collect()),
            T::Table(t) => Self::from_toml_table(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_give_the_same_tree() {
        let j = Value::from_json(r#"{"a":"x","b":[1,2],"c":{"k":"v"},"d":true,"e":1.5}"#).unwrap();
        let t =
            Value::from_toml("a = \"x\"\nb = [1, 2]\nd = true\ne = 1.5\n[c]\nk = \"v\"\n").unwrap();
        let sorted = |v: Value| match v {
            Value::Map(mut m) => {
                m.sort_by(|a, b| a.0.cmp(&b.0));
                m
            }
            _ => panic!("not a map"),
        };
        assert_eq!(sorted(j), sorted(t));
        let e = Value::from_toml("a = \n").unwrap_err();
        assert!(e.starts_with("line 1:") && !e.contains('\n'), "{e}");
        assert!(Value::from_json("{").is_err());
    }
}
