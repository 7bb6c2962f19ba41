//! Go `flag`-package parsing for the client verbs: `-name=value`, `-name value`, `--name=value`
//! and `--name value`; boolean flags stand alone or take `=true`/`=false`; repeatable flags
//! accumulate; parsing stops at the first argument that is not a flag (or after `--`), and
//! the rest are the verb's arguments.

use std::collections::HashMap;
use std::time::Duration;

/// Parsed flags and the remaining arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<String, Vec<String>>,
    pub args: Vec<String>,
}

impl Parsed {
    /// The last value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.last().map(String::as_str)
    }

    /// Every value of a repeatable flag, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// A boolean flag's value (`default` when absent).
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(default),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(format!("invalid boolean value {v:?} for -{name}")),
        }
    }
}

/// Parses `args`: `bools` take no separate value, `values` do; anything else is an error
/// naming the flag, as Go's `flag provided but not defined: -x`.
pub fn parse(args: &[String], bools: &[&str], values: &[&str]) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(flag) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|f| !f.is_empty() && !f.starts_with('-'))
        else {
            break;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let value = if bools.contains(&name) {
            inline.unwrap_or_else(|| "true".to_owned())
        } else if values.contains(&name) {
            match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?
                }
            }
        } else {
            return Err(format!("flag provided but not defined: -{name}"));
        };
        p.values.entry(name.to_owned()).or_default().push(value);
        i += 1;
    }
    p.args = args[i.min(args.len())..].to_vec();
    Ok(p)
}

/// Parses a Go duration (`1.5s`, `300ms`, `1m30s`, `0`), as the agent's config does.
pub fn duration(s: &str) -> Result<Duration, String> {
    hearsay_agent::conventions::parse_go_duration(s)
}

/// Serf's `UnmarshalTags`: `key=value` pairs into a map.
pub fn tags(pairs: &[String]) -> Result<std::collections::BTreeMap<String, String>, String> {
    pairs
        .iter()
        .map(|t| match t.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("Invalid tag: '{t}'")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_flag_forms() {
        let p = parse(
            &v(&[
                "-tag",
                "a=1",
                "--tag=b=2",
                "-detailed",
                "--format",
                "json",
                "x",
                "-y",
            ]),
            &["detailed"],
            &["tag", "format"],
        )
        .unwrap();
        assert_eq!(p.all("tag"), ["a=1", "b=2"]);
        assert_eq!(p.get("format"), Some("json"));
        assert!(p.bool("detailed", false).unwrap());
        assert_eq!(p.args, ["x", "-y"]);
        assert!(parse(&v(&["-nope"]), &[], &[])
            .unwrap_err()
            .contains("-nope"));
        assert!(parse(&v(&["-tag"]), &[], &["tag"]).is_err());
        let p = parse(&v(&["-coalesce=false", "--", "-name"]), &["coalesce"], &[]).unwrap();
        assert!(!p.bool("coalesce", true).unwrap());
        assert_eq!(p.args, ["-name"]);
    }

    #[test]
    fn durations_and_tags() {
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(duration("5").is_err());
        assert!(duration("").is_err());
        assert_eq!(tags(&v(&["a=b=c"])).unwrap()["a"], "b=c");
        assert_eq!(tags(&v(&["=x"])).unwrap_err(), "Invalid tag: '=x'");
    }
}
