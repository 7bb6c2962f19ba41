//! Tenants (`[[tenant]]`): teams that share the cluster, each owning the user-event and query
//! names that begin with `NAME/` ([`TenantConfig`]):
//!
//! ```toml
//! [[tenant]]
//! name = "payments"
//! rpc_tokens = ["sha256:9f86d0..."]   # sha256 of each RPC token that acts as this tenant
//! quota = { handlers = 10, concurrency = 4, memory = "256MiB", events_per_second = 50 }
//! grants = { dirs = [], write_dirs = [], env = [], emit = true }   # the most any of its handlers may get
//!
//! [[handler]]
//! tenant = "payments"
//! module = "/opt/payments/refund.wasm"
//! events = "query:payments/refund,member-join"
//! grants = { emit = true }
//! ```
//!
//! A tenant's handler names every event it takes (`user:payments/x`, `query:payments/x`, member
//! events and ticks; no `*`, `user` or `query`), may get no grant beyond its tenant's `grants`
//! (the same keys as `deploy_grants`), and may emit only names in its namespace. Names in a
//! tenant's namespace reach only handlers that name them exactly, so the operator's `*`, `user`
//! and `query` handlers do not see a tenant's events.
//!
//! `quota`: `handlers`, the most handlers it may have here; `concurrency`, the most events of
//! its handlers running at once (more wait, while each handler's queue holds them, and past it
//! are dropped and counted); `memory`, the most linear memory its handlers' live instances hold
//! together (an instance growing past it traps with the reason); `events_per_second`, the most
//! user events its handlers emit each second on this agent (a burst of one second's worth; an
//! emit past it is rejected with the reason). Each is on top of the handlers' own limits and the
//! agent-wide cap, and never borrowed from another tenant.
//!
//! Over RPC, a client that authenticates (Serf's `auth`, `serf ... -rpc-auth=TOKEN`) with a
//! token whose sha256 is in a tenant's `rpc_tokens` acts as that tenant; `rpc_auth` stays the
//! operator's key, with full rights (see `hearsay_rpc::Identity`). A tenant may list the
//! members (`members`, `members-filtered`, `get-coordinate`), send user events and queries
//! named `NAME/...`, `stream` (it gets member events and its namespace's user events and
//! queries only) and list its own handlers (`hearsay handlers`); every other command is
//! refused with `permission denied: tenant "NAME" ...`, and the connection goes on. Without
//! `rpc_auth`, clients that send no `auth` are the operator (as in Serf), so the tokens protect
//! nothing: the agent warns at start.

use super::de::{Strings, Table};
use super::deploy::Ceiling;
use super::{ConfigError, DeployCeiling, HandlerConfig};
use crate::filter::{EventKind, FilterTerm};
use serde::Deserialize;

/// One tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    /// Its name: also its namespace, `NAME/`.
    pub name: String,
    /// sha256 digests of the RPC tokens that act as this tenant.
    pub rpc_tokens: Vec<[u8; 32]>,
    /// Its quota on this agent.
    pub quota: TenantQuota,
    /// The most any of its handlers may be granted.
    pub grants: DeployCeiling,
}

/// A tenant's `quota`; `None`: no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantQuota {
    /// The most handlers it may have.
    pub handlers: Option<usize>,
    /// The most events of its handlers running at once.
    pub concurrency: Option<usize>,
    /// The most bytes of linear memory its handlers' live instances hold together.
    pub memory: Option<u64>,
    /// The most user events its handlers emit each second.
    pub events_per_second: Option<u32>,
}

impl TenantConfig {
    /// The prefix of every user-event and query name this tenant owns: `NAME/`.
    pub fn namespace(&self) -> String {
        namespace(&self.name)
    }
}

/// The namespace of tenant `name`: `NAME/`.
pub fn namespace(name: &str) -> String {
    format!("{name}/")
}

/// Which tenant owns the user-event or query `name`, among `tenants`' names: the one whose
/// namespace it begins with, something following (`payments/` alone is no tenant's).
pub fn owner<'a>(tenants: &'a [String], name: &str) -> Option<&'a str> {
    tenants
        .iter()
        .map(String::as_str)
        .find(|t| hearsay_rpc::in_namespace(t, name))
}

/// Checks a tenant's name: a lowercase letter, then lowercase letters, digits, `-` or `_`, at
/// most 64 (it begins event names and is shown in listings).
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c));
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "tenant name {name:?}: use a lowercase letter, then lowercase letters, digits, '-' or '_' (at most 64)"
        ))
    }
}

/// Parses an `rpc_tokens` entry: `sha256:` and 64 hex digits (`printf %s TOKEN | sha256sum`).
pub fn parse_token_hash(s: &str) -> Result<[u8; 32], String> {
    let bad = || {
        format!("{s:?}: expected sha256:HEX, the 64 hex digits of the token's sha256 (printf %s TOKEN | sha256sum)")
    };
    let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The value of a `tenant` / `tenants` key: a list of tenant tables.
pub(super) type Tenants = Vec<Table<Entry>>;

/// One `[[tenant]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Entry {
    name: Option<String>,
    rpc_tokens: Option<Strings<String>>,
    quota: Option<Table<QuotaEntry>>,
    grants: Option<Ceiling>,
}

/// A tenant's `quota`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaEntry {
    handlers: Option<super::de::Whole<usize>>,
    concurrency: Option<super::de::Whole<usize>>,
    memory: Option<super::handlers::Size>,
    events_per_second: Option<super::de::Whole<u32>>,
}

/// The tenants a `tenant` / `tenants` key gives; `key` names them in errors.
pub(super) fn configs(
    list: Option<Tenants>,
    origin: &str,
    key: &str,
) -> Result<Vec<TenantConfig>, ConfigError> {
    let bad = |i: usize, what: &str, message: String| ConfigError::BadValue {
        origin: origin.to_owned(),
        key: format!("{key}[{i}]{what}"),
        message,
    };
    let mut out = Vec::new();
    for (i, Table(e)) in list.unwrap_or_default().into_iter().enumerate() {
        let name = e.name.unwrap_or_default();
        check_name(&name).map_err(|m| bad(i, ".name", m))?;
        let rpc_tokens = e
            .rpc_tokens
            .map_or_else(Vec::new, |t| t.0)
            .iter()
            .map(|t| parse_token_hash(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| bad(i, ".rpc_tokens", m))?;
        let grants = match e.grants {
            None => DeployCeiling::default(),
            Some(Table(g)) => g.into_ceiling().map_err(|m| bad(i, ".grants", m))?,
        };
        let quota = e
            .quota
            .map_or_else(TenantQuota::default, |Table(q)| TenantQuota {
                handlers: q.handlers.map(|n| n.0),
                concurrency: q.concurrency.map(|n| n.0),
                memory: q.memory.map(|m| m.0),
                events_per_second: q.events_per_second.map(|n| n.0),
            });
        if quota.concurrency == Some(0)
            || quota.memory == Some(0)
            || quota.events_per_second == Some(0)
        {
            return Err(bad(
                i,
                ".quota",
                "concurrency, memory and events_per_second must be above zero (leave one out for no limit)".into(),
            ));
        }
        out.push(TenantConfig {
            name,
            rpc_tokens,
            quota,
            grants,
        });
    }
    Ok(out)
}

/// Checks the tenants (names unique) and every tenant's handlers: the tenant exists, the filter
/// stays in its namespace, the grants within its ceiling, the count within its quota. The
/// handlers of a tenant get `emit_prefix` = its namespace.
pub(super) fn check(
    tenants: &[TenantConfig],
    handlers: &mut [HandlerConfig],
) -> Result<(), ConfigError> {
    let conflict = |m: String| Err(ConfigError::Conflict(m));
    for (i, t) in tenants.iter().enumerate() {
        if tenants[..i].iter().any(|o| o.name == t.name) {
            return conflict(format!("two tenants are named {:?}", t.name));
        }
    }
    for h in handlers.iter_mut() {
        let Some(name) = &h.tenant else { continue };
        let Some(t) = tenants.iter().find(|t| &t.name == name) else {
            return conflict(format!(
                "handler {:?}: tenant {name:?} is not configured (add a [[tenant]] named {name:?})",
                h.name
            ));
        };
        if let Some(why) = filter_refusal(h, t) {
            return conflict(why);
        }
        if let Some(why) = t
            .grants
            .refusal(&h.grants, &format!("tenant {:?}'s grants", t.name))
        {
            return conflict(format!("handler {:?}: {why}", h.name));
        }
        h.grants.emit_prefix = Some(t.namespace());
        h.tenant_quota = Some(t.quota);
    }
    for t in tenants {
        let count = handlers
            .iter()
            .filter(|h| h.tenant.as_deref() == Some(&t.name))
            .count();
        if let Some(max) = t.quota.handlers.filter(|max| count > *max) {
            return conflict(format!(
                "tenant {:?} has {count} handlers; its quota.handlers is {max}",
                t.name
            ));
        }
    }
    Ok(())
}

/// Why handler `h`'s filter reaches outside tenant `t`'s namespace, if it does.
fn filter_refusal(h: &HandlerConfig, t: &TenantConfig) -> Option<String> {
    let ns = t.namespace();
    let term = h.filter.terms().iter().find(|term| match term {
        FilterTerm::Any | FilterTerm::Kind(EventKind::User | EventKind::Query) => true,
        FilterTerm::Named(EventKind::User | EventKind::Query, n) => {
            !hearsay_rpc::in_namespace(&t.name, n)
        }
        FilterTerm::Kind(_) | FilterTerm::Named(..) | FilterTerm::Every(..) => false,
    });
    term.map(|term| {
        format!(
            "handler {:?} of tenant {:?}: its filter term \"{term}\" reaches outside the tenant's namespace; name each user event and query in it, e.g. user:{ns}NAME or query:{ns}NAME",
            h.name, t.name,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::EventFilter;

    fn tenant(name: &str) -> TenantConfig {
        TenantConfig {
            name: name.into(),
            rpc_tokens: Vec::new(),
            quota: TenantQuota::default(),
            grants: DeployCeiling {
                emit: true,
                ..DeployCeiling::default()
            },
        }
    }

    fn handler(tenant: Option<&str>, events: &str) -> HandlerConfig {
        let mut h = HandlerConfig::new(EventFilter::parse(events).unwrap(), "/x/h.wasm");
        h.tenant = tenant.map(String::from);
        h
    }

    #[test]
    fn names_belong_to_the_tenant_whose_namespace_they_begin_with() {
        let names = ["pay".to_owned(), "payments".to_owned()];
        assert_eq!(owner(&names, "payments/refund"), Some("payments"));
        assert_eq!(owner(&names, "pay/x"), Some("pay"));
        assert_eq!(owner(&names, "payments"), None);
        assert_eq!(owner(&names, "payments/"), None);
        assert_eq!(owner(&names, "payments-x/y"), None);
        assert_eq!(owner(&names, "deploy"), None);
    }

    #[test]
    fn token_hashes_parse_and_bad_ones_say_how() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let h = parse_token_hash(&format!("sha256:{hex}")).unwrap();
        assert_eq!((h[0], h[31]), (0x9f, 0x08));
        for bad in [
            hex.to_owned(),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:{}zz", &hex[2..]),
        ] {
            let e = parse_token_hash(&bad).unwrap_err();
            assert!(e.contains("sha256sum"), "{e}");
        }
    }

    #[test]
    fn a_tenants_handler_stays_in_its_namespace_and_under_its_ceiling() {
        let tenants = [tenant("payments"), tenant("search")];
        let mut ok = [
            handler(
                Some("payments"),
                "query:payments/refund,user:payments/x,member-join,every:10s",
            ),
            handler(None, "*"),
        ];
        check(&tenants, &mut ok).unwrap();
        assert_eq!(ok[0].grants.emit_prefix.as_deref(), Some("payments/"));
        assert_eq!(ok[1].grants.emit_prefix, None);

        for (events, why) in [
            ("*", "\"*\""),
            ("", "\"*\""),
            ("user", "\"user\""),
            ("query", "\"query\""),
            ("query:search/find", "query:search/find"),
            ("user:payments", "user:payments"),
            ("user:payments/", "user:payments/"),
            ("member-join,query:refund", "query:refund"),
        ] {
            let mut hs = [handler(Some("payments"), events)];
            let e = check(&tenants, &mut hs).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("namespace"), "{events}: {e}");
        }
        let mut hs = [handler(Some("nobody"), "query:nobody/x")];
        let e = check(&tenants, &mut hs).unwrap_err().to_string();
        assert!(e.contains("not configured"), "{e}");

        // Grants beyond the tenant's ceiling.
        let mut h = handler(Some("search"), "query:search/find");
        h.grants.clocks = true;
        let e = check(&tenants, &mut [h]).unwrap_err().to_string();
        assert!(
            e.contains("clocks") && e.contains("tenant \"search\""),
            "{e}"
        );

        // The quota on handlers, and unique names.
        let mut limited = tenant("payments");
        limited.quota.handlers = Some(1);
        let mut two = [
            handler(Some("payments"), "query:payments/a"),
            handler(Some("payments"), "query:payments/b"),
        ];
        let e = check(&[limited], &mut two).unwrap_err().to_string();
        assert!(e.contains("quota.handlers is 1"), "{e}");
        let e = check(&[tenant("a"), tenant("a")], &mut [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("two tenants"), "{e}");
    }

    #[test]
    fn tenant_names_are_checked() {
        for good in ["payments", "a", "team-2_x"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Payments", "2x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
