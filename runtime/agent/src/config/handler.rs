//! What the agent knows about one handler before loading it ([`HandlerConfig`]: name, filter,
//! module file, limits, grants), the `-handler FILTER=PATH.wasm` flag, and which events a
//! handler's filter admits (Serf's filter semantics plus hearsay's reserved names).

use std::path::{Path, PathBuf};

use hearsay_host::{Grants, Limits};

use crate::filter::{EventFilter, EventKind, FilterError, FilterTerm};

/// Name prefixes of events and queries the agents use among themselves (Serf's internal
/// queries, hearsay's extensions). A handler sees them only when its filter names them exactly
/// (`user:_hearsay_deploy`), never through `*`, `user` or `query`.
pub const RESERVED_PREFIXES: [&str; 2] = ["_serf_", "_hearsay_"];

/// Whether an event or query name is reserved for the agents themselves.
pub fn is_reserved(name: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `filter` lets an event of `kind` named `name` through to a handler: Serf's matching,
/// except that reserved names, and names in the namespace of one of `tenants`, pass only a term
/// naming them exactly.
pub fn admits(filter: &EventFilter, kind: EventKind, name: &str, tenants: &[String]) -> bool {
    let exact_only = matches!(kind, EventKind::User | EventKind::Query)
        && super::tenant::owner(tenants, name).is_some();
    if is_reserved(name) || exact_only {
        return filter
            .terms()
            .iter()
            .any(|t| matches!(t, FilterTerm::Named(k, n) if *k == kind && n == name));
    }
    filter.matches(kind, name)
}

/// One handler as configured: what `crate::handlers::Handlers` loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerConfig {
    /// Unique among the agent's handlers; used in logs, stats and `hearsay handlers`.
    pub name: String,
    /// Which events it gets (Serf's `-event-handler` filter syntax).
    pub filter: EventFilter,
    /// The component file (`.wasm`, built for wasm32-wasip2).
    pub module: PathBuf,
    /// Memory, deadline, fuel and queue per event.
    pub limits: Limits,
    /// What it may touch beyond the contract (directories, env, clocks, emit).
    pub grants: Grants,
    /// The tenant it belongs to (`[[tenant]]`); `None`: the operator's.
    pub tenant: Option<String>,
    /// Its tenant's quota (set when the configuration is checked), shared with the tenant's
    /// other handlers.
    pub tenant_quota: Option<super::tenant::TenantQuota>,
}

impl HandlerConfig {
    /// A handler with default limits and no grants, named after its module file (`echo.wasm`
    /// is `echo`).
    pub fn new(filter: EventFilter, module: impl Into<PathBuf>) -> Self {
        let module = module.into();
        HandlerConfig {
            name: name_from_module(&module),
            filter,
            module,
            limits: Limits::default(),
            grants: Grants::default(),
            tenant: None,
            tenant_quota: None,
        }
    }

    /// Parses the `-handler FILTER=PATH.wasm` flag (a lone `PATH` gets every event).
    pub fn from_flag(flag: &str) -> Result<Self, FilterError> {
        let (filter, path) = EventFilter::parse_with_target(flag)?;
        Ok(Self::new(filter, path))
    }
}

/// A handler's name from its module file: the file stem (`/opt/h/echo.wasm` is `echo`).
pub fn name_from_module(module: &Path) -> String {
    module
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "handler".to_owned())
}

/// Makes names unique in order: a second `echo` becomes `echo-2`, a third `echo-3` (for the
/// same module given twice with different filters).
pub fn dedupe_names(handlers: &mut [HandlerConfig]) {
    let mut seen = std::collections::HashSet::new();
    for h in handlers.iter_mut() {
        if !seen.insert(h.name.clone()) {
            let base = h.name.clone();
            let mut n = 2;
            while !seen.insert(format!("{base}-{n}")) {
                n += 1;
            }
            h.name = format!("{base}-{n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> EventFilter {
        EventFilter::parse(s).unwrap()
    }

    #[test]
    fn wildcards_skip_tenants_names_unless_named() {
        let tenants = ["payments".to_owned()];
        for (filter, kind) in [
            ("*", EventKind::User),
            ("", EventKind::Query),
            ("user", EventKind::User),
            ("query", EventKind::Query),
        ] {
            let filter = f(filter);
            assert!(!admits(&filter, kind, "payments/refund", &tenants));
            // Not in a namespace: the operator's, as without tenants.
            assert!(admits(&filter, kind, "payments", &tenants));
            assert!(admits(&filter, kind, "search/x", &tenants));
        }
        let named = f("user:payments/refund,query:payments/find");
        assert!(admits(&named, EventKind::User, "payments/refund", &tenants));
        assert!(admits(&named, EventKind::Query, "payments/find", &tenants));
        assert!(!admits(
            &named,
            EventKind::Query,
            "payments/refund",
            &tenants
        ));
        assert!(admits(&f("*"), EventKind::MemberJoin, "", &tenants));
    }

    #[test]
    fn wildcards_skip_reserved_names_unless_named() {
        for filter in ["*", "", "user", "user:", "query"] {
            let filter = f(filter);
            assert!(!admits(&filter, EventKind::User, "_hearsay_deploy", &[]));
            assert!(!admits(&filter, EventKind::Query, "_serf_ping", &[]));
        }
        assert!(admits(&f("*"), EventKind::User, "deploy", &[]));
        assert!(admits(&f("user"), EventKind::User, "deploy", &[]));
        assert!(admits(&f("query"), EventKind::Query, "load", &[]));
        assert!(admits(&f("*"), EventKind::MemberJoin, "", &[]));
        let named = f("member-join,user:_hearsay_deploy");
        assert!(admits(&named, EventKind::User, "_hearsay_deploy", &[]));
        assert!(!admits(&named, EventKind::Query, "_hearsay_deploy", &[]));
        assert!(!admits(&named, EventKind::User, "_hearsay_other", &[]));
        assert!(admits(&named, EventKind::MemberJoin, "", &[]));
        assert!(admits(
            &f("query:_serf_ping"),
            EventKind::Query,
            "_serf_ping",
            &[]
        ));
    }

    #[test]
    fn serf_semantics_for_ordinary_names() {
        let filter = f("member-join,user:deploy");
        assert!(admits(&filter, EventKind::MemberJoin, "", &[]));
        assert!(admits(&filter, EventKind::User, "deploy", &[]));
        assert!(!admits(&filter, EventKind::User, "deploy2", &[]));
        assert!(!admits(&filter, EventKind::Query, "deploy", &[]));
        assert!(!admits(&filter, EventKind::MemberLeave, "", &[]));
        assert!(admits(&f("query:echo"), EventKind::Query, "echo", &[]));
        assert!(!admits(&f("query:echo"), EventKind::User, "echo", &[]));
    }

    #[test]
    fn flags_name_handlers_after_their_module() {
        let h = HandlerConfig::from_flag("query:echo=/opt/handlers/echo.wasm").unwrap();
        assert_eq!(h.name, "echo");
        assert_eq!(h.module, PathBuf::from("/opt/handlers/echo.wasm"));
        assert_eq!(h.filter, f("query:echo"));
        let all = HandlerConfig::from_flag("sysinfo.wasm").unwrap();
        assert_eq!(
            (all.name.as_str(), all.filter.to_string()),
            ("sysinfo", "*".into())
        );
        assert!(HandlerConfig::from_flag("query:echo=").is_err());
        let e = HandlerConfig::from_flag("member-joined=x.wasm").unwrap_err();
        assert!(e.to_string().contains("member-joined"), "{e}");

        let mut hs = vec![
            HandlerConfig::from_flag("query:a=echo.wasm").unwrap(),
            HandlerConfig::from_flag("query:b=echo.wasm").unwrap(),
            HandlerConfig::from_flag("user=x/echo.wasm").unwrap(),
            HandlerConfig::from_flag("user=blob.wasm").unwrap(),
        ];
        dedupe_names(&mut hs);
        let names: Vec<_> = hs.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["echo", "echo-2", "echo-3", "blob"]);
    }
}
