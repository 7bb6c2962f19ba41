//! The client verbs' command lines, parsed with Go's flag syntax
//! ([`hearsay_agent::conventions::flags`]): each verb defines its boolean and value flags,
//! repeatable flags accumulate, and the arguments after the flags are the verb's operands.
//! Errors use the words of Go's flag package, as `serf` prints them.

use hearsay_agent::conventions::{parse_bool, FlagError, Flags};
use std::collections::HashMap;

/// Parsed flags and the remaining arguments.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    values: HashMap<String, Vec<String>>,
    pub args: Vec<String>,
}

impl Parsed {
    /// The last value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.last().map(String::as_str)
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// Adds `other`'s flags and operands after this one's (flags given after an operand).
    pub(crate) fn merge(&mut self, other: Parsed) {
        for (name, values) in other.values {
            self.values.entry(name).or_default().extend(values);
        }
        self.args.extend(other.args);
    }

    /// A boolean flag's value (`default` when absent), spelled as Go's `strconv.ParseBool`
    /// accepts.
    pub(crate) fn bool(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                parse_bool(v).ok_or_else(|| format!("invalid boolean value {v:?} for -{name}"))
            }
        }
    }
}

/// Parses `args`: `bools` take no separate value, `values` do; anything else is an error
/// naming the flag, as Go's `flag provided but not defined: -x`.
pub(crate) fn parse(args: &[String], bools: &[&str], values: &[&str]) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut flags = Flags::defined(args.iter().cloned(), bools, values);
    for flag in &mut flags {
        let flag = flag.map_err(|e| match e {
            FlagError::NeedsValue(name) => format!("flag needs an argument: -{name}"),
            other => other.to_string(),
        })?;
        p.values.entry(flag.name).or_default().push(flag.value);
    }
    p.args = flags.into_rest();
    Ok(p)
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
        assert_eq!(
            parse(&v(&["-nope"]), &[], &[]).unwrap_err(),
            "flag provided but not defined: -nope"
        );
        assert_eq!(
            parse(&v(&["-tag"]), &[], &["tag"]).unwrap_err(),
            "flag needs an argument: -tag"
        );
        let p = parse(&v(&["-coalesce=false", "--", "-name"]), &["coalesce"], &[]).unwrap();
        assert!(!p.bool("coalesce", true).unwrap());
        assert_eq!(p.args, ["-name"]);
    }

    #[test]
    fn payloads_and_booleans() {
        // A payload that begins with a dash is an operand after the name.
        let p = parse(&v(&["-coalesce=f", "deploy", "-v1"]), &["coalesce"], &[]).unwrap();
        assert!(!p.bool("coalesce", true).unwrap());
        assert_eq!(p.args, ["deploy", "-v1"]);
        // ... and a flag's separate value may begin with one.
        let p = parse(&v(&["-tag", "-x=1"]), &[], &["tag"]).unwrap();
        assert_eq!(p.all("tag"), ["-x=1"]);
        let p = parse(&v(&["-detailed=yes"]), &["detailed"], &[]).unwrap();
        assert_eq!(
            p.bool("detailed", false).unwrap_err(),
            "invalid boolean value \"yes\" for -detailed"
        );
        let p = parse(&v(&["-detailed=TRUE"]), &["detailed"], &[]).unwrap();
        assert!(p.bool("detailed", false).unwrap());
        assert!(parse(&v(&[]), &[], &[]).unwrap().bool("x", true).unwrap());
    }
}
