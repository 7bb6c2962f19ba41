//! Serf's event-handler filter syntax (`member-join,user:deploy=handler.wasm`, `query:load`,
//! `*`): parsing with clear errors, and matching an event's kind and name.

use std::fmt;
use std::time::Duration;

use crate::conventions::parse_go_duration;

/// The kinds of event a handler can be given, spelled as Serf spells them in filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `member-join`.
    MemberJoin,
    /// `member-leave`.
    MemberLeave,
    /// `member-failed`.
    MemberFailed,
    /// `member-update`.
    MemberUpdate,
    /// `member-reap`.
    MemberReap,
    /// `user`, a user event.
    User,
    /// `query`.
    Query,
}

impl EventKind {
    /// Every kind, in Serf's order.
    pub const ALL: [EventKind; 7] = [
        EventKind::MemberJoin,
        EventKind::MemberLeave,
        EventKind::MemberFailed,
        EventKind::MemberUpdate,
        EventKind::MemberReap,
        EventKind::User,
        EventKind::Query,
    ];

    /// Serf's name for the kind (`SERF_EVENT` in its shell handlers).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MemberJoin => "member-join",
            EventKind::MemberLeave => "member-leave",
            EventKind::MemberFailed => "member-failed",
            EventKind::MemberUpdate => "member-update",
            EventKind::MemberReap => "member-reap",
            EventKind::User => "user",
            EventKind::Query => "query",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shortest `every:` period.
pub const MIN_PERIOD: Duration = Duration::from_millis(100);

/// One filter term: `*`, a kind, `user:NAME` / `query:NAME`, or hearsay's `every:DURATION`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FilterTerm {
    /// `*`: every event.
    Any,
    /// Every event of the kind (for `user` and `query`, whatever their name).
    Kind(EventKind),
    /// `user:NAME` or `query:NAME`: that kind with exactly that name.
    Named(EventKind, String),
    /// `every:10s`: a `tick` event each period (as written, and parsed). Matches no other event.
    Every(String, Duration),
}

impl fmt::Display for FilterTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterTerm::Any => f.write_str("*"),
            FilterTerm::Kind(k) => write!(f, "{k}"),
            FilterTerm::Named(k, n) => write!(f, "{k}:{n}"),
            FilterTerm::Every(text, _) => write!(f, "every:{text}"),
        }
    }
}

/// A comma-separated list of terms; an event passes when any term matches. Empty means `*`,
/// as in Serf.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventFilter {
    terms: Vec<FilterTerm>,
}

/// Why a filter did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    #[error(
        "invalid event filter {term:?} in {filter:?}: expected *, member-join, member-leave, \
         member-failed, member-update, member-reap, user, user:NAME, query, query:NAME or \
         every:DURATION (e.g. every:10s, at least 100ms)"
    )]
    /// A term of a filter is no event kind.
    BadTerm {
        /// The term.
        term: String,
        /// The whole filter.
        filter: String,
    },
    /// A `-handler` value has no `=PATH` (the value as given).
    #[error("handler {0:?} names no module: expected FILTER=PATH, e.g. user:deploy=deploy.wasm")]
    NoModule(String),
}

impl EventFilter {
    /// Parses Serf's filter syntax. Unlike Serf, which silently ignores a handler with a
    /// misspelled event type, an unknown term is an error.
    pub fn parse(filter: &str) -> Result<Self, FilterError> {
        let filter = filter.trim();
        if filter.is_empty() {
            return Ok(Self {
                terms: vec![FilterTerm::Any],
            });
        }
        let bad = |term: &str| FilterError::BadTerm {
            term: term.to_owned(),
            filter: filter.to_owned(),
        };
        let terms = filter
            .split(',')
            .map(|raw| {
                let term = raw.trim();
                if term == "*" {
                    return Ok(FilterTerm::Any);
                }
                if let Some(text) = term.strip_prefix("every:") {
                    return match parse_go_duration(text) {
                        Ok(d) if d >= MIN_PERIOD => Ok(FilterTerm::Every(text.to_owned(), d)),
                        _ => Err(bad(term)),
                    };
                }
                for kind in [EventKind::User, EventKind::Query] {
                    if let Some(name) = term
                        .strip_prefix(kind.as_str())
                        .and_then(|r| r.strip_prefix(':'))
                    {
                        // `user:` with no name is Serf's "any user event".
                        return Ok(if name.is_empty() {
                            FilterTerm::Kind(kind)
                        } else {
                            FilterTerm::Named(kind, name.to_owned())
                        });
                    }
                }
                EventKind::parse(term)
                    .map(FilterTerm::Kind)
                    .ok_or_else(|| bad(term))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { terms })
    }

    /// Parses `FILTER=PATH` (Serf's `-event-handler` syntax; a lone `PATH` means every event).
    pub fn parse_with_target(spec: &str) -> Result<(Self, String), FilterError> {
        let (filter, target) = match spec.split_once('=') {
            Some((f, t)) => (f, t),
            None => ("", spec),
        };
        if target.trim().is_empty() {
            return Err(FilterError::NoModule(spec.to_owned()));
        }
        Ok((Self::parse(filter)?, target.trim().to_owned()))
    }

    /// Whether an event of `kind` (named `name`, for user events and queries) passes.
    pub fn matches(&self, kind: EventKind, name: &str) -> bool {
        self.terms.iter().any(|t| match t {
            FilterTerm::Any => true,
            FilterTerm::Kind(k) => *k == kind,
            FilterTerm::Named(k, n) => *k == kind && n == name,
            FilterTerm::Every(..) => false,
        })
    }

    /// The periods of its `every:` terms.
    pub fn periods(&self) -> Vec<Duration> {
        self.terms
            .iter()
            .filter_map(|t| match t {
                FilterTerm::Every(_, d) => Some(*d),
                _ => None,
            })
            .collect()
    }

    /// The terms, in the order written.
    pub fn terms(&self) -> &[FilterTerm] {
        &self.terms
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serf_examples_parse_and_match() {
        let f = EventFilter::parse("member-join,user:deploy").unwrap();
        assert!(f.matches(EventKind::MemberJoin, ""));
        assert!(f.matches(EventKind::User, "deploy"));
        assert!(!f.matches(EventKind::User, "deploy2"));
        assert!(!f.matches(EventKind::MemberLeave, ""));
        assert!(!f.matches(EventKind::Query, "deploy"));
        assert_eq!(f.to_string(), "member-join,user:deploy");

        let q = EventFilter::parse("query:load").unwrap();
        assert!(q.matches(EventKind::Query, "load"));
        assert!(!q.matches(EventKind::User, "load"));

        for any in ["*", "", "  "] {
            let f = EventFilter::parse(any).unwrap();
            for k in EventKind::ALL {
                assert!(f.matches(k, "x"), "{any:?} {k}");
            }
        }
        let users = EventFilter::parse("user").unwrap();
        assert!(users.matches(EventKind::User, "anything"));
        assert_eq!(
            EventFilter::parse("user:").unwrap(),
            EventFilter::parse("user").unwrap()
        );
    }

    #[test]
    fn every_terms_are_periods_that_match_no_event() {
        let f = EventFilter::parse("member-join, every:10s,every:250ms").unwrap();
        assert_eq!(
            f.periods(),
            [Duration::from_secs(10), Duration::from_millis(250)]
        );
        assert_eq!(f.to_string(), "member-join,every:10s,every:250ms");
        assert!(!EventFilter::parse("every:1s")
            .unwrap()
            .matches(EventKind::User, "x"));
        for bad in ["every:", "every:0s", "every:10ms", "every:ten", "every:-1s"] {
            let e = EventFilter::parse(bad).unwrap_err().to_string();
            assert!(e.contains("every:DURATION"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_terms_are_named() {
        let e = EventFilter::parse("member-join,member-joined").unwrap_err();
        assert_eq!(
            e,
            FilterError::BadTerm {
                term: "member-joined".into(),
                filter: "member-join,member-joined".into()
            }
        );
        assert!(e.to_string().contains("\"member-joined\""));
        assert!(EventFilter::parse("users:x").is_err());
        assert!(EventFilter::parse(",").is_err());
    }

    #[test]
    fn filter_and_target() {
        let (f, t) = EventFilter::parse_with_target("member-join,user:deploy=h.wasm").unwrap();
        assert_eq!(t, "h.wasm");
        assert!(f.matches(EventKind::User, "deploy"));
        let (f, t) = EventFilter::parse_with_target("echo.wasm").unwrap();
        assert_eq!(t, "echo.wasm");
        assert!(f.matches(EventKind::Query, "x"));
        assert_eq!(
            EventFilter::parse_with_target("user:x=").unwrap_err(),
            FilterError::NoModule("user:x=".into())
        );
        assert!(EventFilter::parse_with_target("bogus=h.wasm").is_err());
    }
}
