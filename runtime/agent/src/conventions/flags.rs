//! Go's `flag` package as `serf` parses its command lines: `-name=value`, `-name value`,
//! `--name=value` and `--name value`; a boolean flag stands alone or takes `=value`, spelled as
//! Go's `strconv.ParseBool` accepts ([`parse_bool`]); a flag's separate value is taken as is,
//! even when it begins with `-`; parsing stops after `--` or at the first argument that is not a
//! flag, and the rest are the command's operands ([`Flags::into_rest`]). Also Serf's
//! `-tag key=value` ([`parse_tag`], Serf's `UnmarshalTags`).
//!
//! [`Flags`] only splits arguments into names and values; the caller matches the names and
//! parses the values, so each command keeps its own flag table and messages.

use std::collections::BTreeMap;
use thiserror::Error;

/// Why a command line did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FlagError {
    /// An operand, given to a command that takes none (see [`Flags::finish`]).
    #[error("unexpected argument {0:?} (flags start with - or --)")]
    NotAFlag(String),
    /// A flag that takes a value was last on the command line.
    #[error("flag -{0} needs a value")]
    NeedsValue(String),
    /// A flag the command does not have (from a [`Flags::defined`] set only; other callers
    /// match the names themselves).
    #[error("flag provided but not defined: -{0}")]
    Undefined(String),
    /// A flag's value did not parse.
    #[error("-{flag}={value:?}: expected {expected}")]
    BadValue {
        /// The flag's name, without dashes.
        flag: String,
        /// The value as given.
        value: String,
        /// What the flag takes (`a whole number`, `a duration`, ...).
        expected: &'static str,
    },
}

/// One flag: its name without dashes and its value (`"true"` for a boolean flag standing
/// alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name, without dashes.
    pub name: String,
    /// The value (`"true"` for a boolean flag standing alone).
    pub value: String,
}

impl Flag {
    /// The value as a boolean, spelled as Go's `strconv.ParseBool` accepts.
    pub fn bool(&self) -> Result<bool, FlagError> {
        parse_bool(&self.value).ok_or_else(|| self.bad("true or false"))
    }

    /// The error for a value that is not what the flag takes (`expected` says what it takes).
    pub fn bad(&self, expected: &'static str) -> FlagError {
        FlagError::BadValue {
            flag: self.name.clone(),
            value: self.value.clone(),
            expected,
        }
    }
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`; nothing
/// else.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Splits a command line into [`Flag`]s, in order. A flag listed in `bools` takes no separate
/// value; every other flag does (or, in a [`Flags::defined`] set, only those listed in
/// `values`).
#[derive(Debug)]
pub struct Flags<'a, I> {
    args: I,
    bools: &'a [&'a str],
    values: Option<&'a [&'a str]>,
    /// The operand that ended the flags, kept for [`Flags::into_rest`].
    first_operand: Option<String>,
    done: bool,
}

impl<'a, I: Iterator<Item = String>> Flags<'a, I> {
    /// Flags from `args` (without the program name or verb); `bools` are the boolean flags,
    /// every other name takes a value and the caller decides which names exist.
    pub fn new(args: impl IntoIterator<IntoIter = I>, bools: &'a [&'a str]) -> Self {
        Self {
            args: args.into_iter(),
            bools,
            values: None,
            first_operand: None,
            done: false,
        }
    }

    /// Like [`Flags::new`], but a name in neither `bools` nor `values` is
    /// [`FlagError::Undefined`], reported before any value is looked for (as Go's flag
    /// package does).
    pub fn defined(
        args: impl IntoIterator<IntoIter = I>,
        bools: &'a [&'a str],
        values: &'a [&'a str],
    ) -> Self {
        Self {
            values: Some(values),
            ..Self::new(args, bools)
        }
    }

    /// The operands: the arguments after the flags (`--` itself is not one). Meant for after
    /// the iteration has ended.
    pub fn into_rest(self) -> Vec<String> {
        self.first_operand.into_iter().chain(self.args).collect()
    }

    /// Ends the command line of a command that takes no operands: the first one left, if
    /// any, is [`FlagError::NotAFlag`].
    pub fn finish(self) -> Result<(), FlagError> {
        match self.into_rest().into_iter().next() {
            Some(operand) => Err(FlagError::NotAFlag(operand)),
            None => Ok(()),
        }
    }

    fn flag(&mut self, name: &str, inline: Option<&str>) -> Result<Flag, FlagError> {
        let value = if self.bools.contains(&name) {
            inline.unwrap_or("true").to_owned()
        } else if self.values.is_some_and(|v| !v.contains(&name)) {
            return Err(FlagError::Undefined(name.to_owned()));
        } else {
            match inline {
                Some(v) => v.to_owned(),
                None => self
                    .args
                    .next()
                    .ok_or_else(|| FlagError::NeedsValue(name.to_owned()))?,
            }
        };
        Ok(Flag {
            name: name.to_owned(),
            value,
        })
    }
}

/// The part of `arg` after its dashes, if `arg` is a flag: `-x` and `--x`, but not `-`,
/// `--` or `---x`, which Go's flag package does not take as flags either.
fn flag_body(arg: &str) -> Option<&str> {
    arg.strip_prefix("--")
        .or_else(|| arg.strip_prefix('-'))
        .filter(|f| !f.is_empty() && !f.starts_with('-'))
}

impl<I: Iterator<Item = String>> Iterator for Flags<'_, I> {
    type Item = Result<Flag, FlagError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let arg = self.args.next()?;
        if arg == "--" {
            self.done = true;
            return None;
        }
        let Some(body) = flag_body(&arg) else {
            self.done = true;
            self.first_operand = Some(arg);
            return None;
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let flag = self.flag(name, inline);
        self.done = flag.is_err();
        Some(flag)
    }
}

/// A `-tag` value that is not `key=value` with a key, in Serf's words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Invalid tag: '{0}'")]
pub struct TagError(pub String);

/// Serf's `UnmarshalTags` for one tag: `key=value`, split at the first `=` (so the value may
/// hold more), with a key that is not empty.
pub fn parse_tag(s: &str) -> Result<(String, String), TagError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(TagError(s.to_owned())),
    }
}

/// Serf's `UnmarshalTags`: every `-tag` into one map (a later key wins).
pub fn parse_tags<S: AsRef<str>>(tags: &[S]) -> Result<BTreeMap<String, String>, TagError> {
    tags.iter().map(|t| parse_tag(t.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Every flag as (name, value).
    type Pairs = Vec<(String, String)>;

    /// Every flag as (name, value), and the operands.
    fn split(v: &[&str], bools: &[&str]) -> Result<(Pairs, Vec<String>), FlagError> {
        let mut flags = Flags::new(args(v), bools);
        let mut out = Vec::new();
        for f in &mut flags {
            let f = f?;
            out.push((f.name, f.value));
        }
        Ok((out, flags.into_rest()))
    }

    fn pairs(v: &[(&str, &str)]) -> Pairs {
        v.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_spelling_of_a_flag_and_its_value() {
        let (f, rest) = split(
            &["-a=1", "-b", "2", "--c=3", "--d", "4", "-e=x=y", "-empty="],
            &[],
        )
        .unwrap();
        assert_eq!(
            f,
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "x=y"),
                ("empty", "")
            ])
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn boolean_flags_stand_alone_or_take_a_value() {
        let (f, _) = split(
            &["-v", "--v", "-v=false", "--v=0", "-v=yes", "-n", "x"],
            &["v"],
        )
        .unwrap();
        assert_eq!(
            f,
            pairs(&[
                ("v", "true"),
                ("v", "true"),
                ("v", "false"),
                ("v", "0"),
                ("v", "yes"),
                ("n", "x")
            ])
        );
        let flag = |value: &str| Flag {
            name: "v".into(),
            value: value.into(),
        };
        assert_eq!(flag("false").bool(), Ok(false));
        let e = flag("yes").bool().unwrap_err();
        assert_eq!(e.to_string(), "-v=\"yes\": expected true or false");
    }

    #[test]
    fn a_separate_value_may_begin_with_a_dash() {
        let (f, rest) = split(&["-payload", "-x", "--name", "--", "-n", "-"], &[]).unwrap();
        assert_eq!(f, pairs(&[("payload", "-x"), ("name", "--"), ("n", "-")]));
        assert!(rest.is_empty());
    }

    #[test]
    fn flags_stop_at_the_first_operand_or_after_the_terminator() {
        let (f, rest) = split(&["-a=1", "x", "-b=2"], &[]).unwrap();
        assert_eq!((f, rest), (pairs(&[("a", "1")]), args(&["x", "-b=2"])));
        let (f, rest) = split(&["-v", "--", "-name", "y"], &["v"]).unwrap();
        assert_eq!((f, rest), (pairs(&[("v", "true")]), args(&["-name", "y"])));
        // `-` and `---x` are operands, as in Go.
        assert_eq!(split(&["-"], &[]).unwrap().1, ["-"]);
        assert_eq!(split(&["---x"], &[]).unwrap().1, ["---x"]);
        let mut flags = Flags::new(args(&["-a=1", "stray"]), &[]);
        assert!(flags.by_ref().all(|f| f.is_ok()));
        assert_eq!(flags.finish(), Err(FlagError::NotAFlag("stray".into())));
        let mut flags = Flags::new(args(&["-a=1", "--"]), &[]);
        assert!(flags.by_ref().all(|f| f.is_ok()));
        assert_eq!(flags.finish(), Ok(()));
    }

    #[test]
    fn a_missing_value_and_an_undefined_flag_name_the_flag() {
        assert_eq!(
            split(&["-name"], &[]),
            Err(FlagError::NeedsValue("name".into()))
        );
        let defined = |v: &[&str]| -> Result<Vec<Flag>, FlagError> {
            Flags::defined(args(v), &["v"], &["tag"]).collect()
        };
        assert_eq!(
            defined(&["-nope"]),
            Err(FlagError::Undefined("nope".into()))
        );
        assert_eq!(defined(&["-tag"]), Err(FlagError::NeedsValue("tag".into())));
        assert_eq!(defined(&["--tag", "a=b", "-v"]).unwrap().len(), 2);
        assert_eq!(
            FlagError::Undefined("x".into()).to_string(),
            "flag provided but not defined: -x"
        );
        // Nothing after an error.
        let mut flags = Flags::defined(args(&["-nope", "-v"]), &["v"], &[]);
        assert!(flags.next().unwrap().is_err());
        assert!(flags.next().is_none());
    }

    #[test]
    fn parse_bool_is_gos_strconv_parse_bool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "no", "tRUE", "FaLsE", "2", " true", "on"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tags_are_serfs_unmarshal_tags() {
        assert_eq!(parse_tag("role=web"), Ok(("role".into(), "web".into())));
        assert_eq!(parse_tag("k=v=w"), Ok(("k".into(), "v=w".into())));
        assert_eq!(parse_tag("k="), Ok(("k".into(), String::new())));
        assert_eq!(
            parse_tag("=x").unwrap_err().to_string(),
            "Invalid tag: '=x'"
        );
        assert_eq!(parse_tag("novalue"), Err(TagError("novalue".into())));
        let tags = parse_tags(&["a=1", "b=x=y", "a=2"]).unwrap();
        assert_eq!(tags["a"], "2");
        assert_eq!(tags["b"], "x=y");
        assert!(parse_tags(&["a=1", "bad"]).is_err());
        assert!(parse_tags::<&str>(&[]).unwrap().is_empty());
    }
}
