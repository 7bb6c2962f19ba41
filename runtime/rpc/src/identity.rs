//! Who an RPC client is ([`Identity`]) and what it may do. The operator (any client when the
//! server has no key, or one that sent the server's `auth` key) may do everything; a tenant
//! ([`TenantKey`]: its client sent one of the tenant's tokens) may read the members and
//! coordinates, send user events and queries named in its namespace `NAME/`, stream member
//! events and its namespace's user events and queries, and list its own handlers. Tokens are
//! compared as sha256 digests, in constant time ([`digests_equal`]).

use crate::messages::{Request, RpcHandler};
use sha2::{Digest, Sha256};

/// A tenant the server knows: its name (also its namespace, `NAME/`) and the sha256 digests
/// of the tokens that act as it.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// The tenant's name.
    pub name: String,
    /// sha256 of each of its tokens.
    pub token_hashes: Vec<[u8; 32]>,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("name", &self.name)
            .field("tokens", &self.token_hashes.len())
            .finish()
    }
}

/// Who a connection acts as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Identity {
    /// Full rights: the server has no key, or the client sent it.
    #[default]
    Operator,
    /// A tenant: the client sent one of its tokens.
    Tenant {
        /// The tenant's name.
        name: String,
    },
}

/// What a tenant may use, for refusals.
const TENANT_MAY: &str = "members, members-filtered, get-coordinate, stream, stop, handlers, \
                          and event and query";

impl Identity {
    /// The tenant's name, if this is a tenant.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Operator => None,
            Self::Tenant { name } => Some(name),
        }
    }

    /// Whether this identity sees the user event or query `name` (a tenant: only names in
    /// its namespace).
    pub fn sees(&self, name: &str) -> bool {
        self.tenant().is_none_or(|t| in_namespace(t, name))
    }

    /// Whether this identity sees `handler` in the `handlers` listing (a tenant: only its own).
    pub fn sees_handler(&self, handler: &RpcHandler) -> bool {
        self.tenant()
            .is_none_or(|t| handler.tenant.as_deref() == Some(t))
    }

    /// Whether this identity may run `req` (the request's `command` names it in refusals);
    /// `Err` is the refusal the client gets.
    pub(crate) fn permits(&self, command: &str, req: &Request) -> Result<(), String> {
        let Some(tenant) = self.tenant() else {
            return Ok(());
        };
        let named = |what: &str, name: &str| {
            if in_namespace(tenant, name) {
                Ok(())
            } else {
                Err(format!(
                    "permission denied: tenant {tenant:?} may send {what} only in its namespace \
                     {tenant}/ (not {name:?})"
                ))
            }
        };
        match req {
            Request::Handshake { .. }
            | Request::Auth { .. }
            | Request::Members
            | Request::MembersFiltered { .. }
            | Request::Coordinate { .. }
            | Request::Stop { .. }
            | Request::Stream { .. }
            | Request::Handlers => Ok(()),
            Request::Event { name, .. } => named("events", name),
            Request::Query(q) => named("queries", &q.name),
            Request::ForceLeave { .. }
            | Request::Join { .. }
            | Request::Tags { .. }
            | Request::Monitor { .. }
            | Request::Leave
            | Request::Respond { .. }
            | Request::Key { .. }
            | Request::Stats
            | Request::Deploy { .. }
            | Request::Deployments => Err(format!(
                "permission denied: tenant {tenant:?} may not use {command:?} (only the operator \
                 may); a tenant may use {TENANT_MAY} with names in its namespace {tenant}/"
            )),
        }
    }
}

/// Whether user event or query `name` is in tenant `tenant`'s namespace: `TENANT/` and at
/// least one more byte.
pub fn in_namespace(tenant: &str, name: &str) -> bool {
    name.len() > tenant.len() + 1
        && name.starts_with(tenant)
        && name.as_bytes()[tenant.len()] == b'/'
}

/// The sha256 of `token`: what a tenant's token is kept and compared as.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, looking at every byte whatever the first difference (no
/// early exit, so the time taken does not tell how much of a guess was right).
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who `auth` with `key` makes a client: a tenant whose token it is (every tenant's every
/// digest is compared), else the operator when it is `auth_key` or the server has no key
/// (as Serf, which accepts any key then); `None`: a wrong key.
pub(crate) fn authenticate(
    auth_key: Option<&str>,
    tenants: &[TenantKey],
    key: &str,
) -> Option<Identity> {
    let digest = token_digest(key);
    let operator = auth_key.map(|k| digests_equal(&token_digest(k), &digest));
    let mut tenant = None;
    for (i, t) in tenants.iter().enumerate() {
        for h in &t.token_hashes {
            let hit = digests_equal(h, &digest);
            if hit && tenant.is_none() {
                tenant = Some(i);
            }
        }
    }
    match (operator, tenant) {
        (Some(true), _) => Some(Identity::Operator),
        (_, Some(i)) => Some(Identity::Tenant {
            name: tenants[i].name.clone(),
        }),
        (None, None) => Some(Identity::Operator),
        (Some(false), None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{KeyOp, QueryRequest};

    fn tenant() -> Identity {
        Identity::Tenant {
            name: "payments".into(),
        }
    }

    fn event(name: &str) -> Request {
        Request::Event {
            name: name.into(),
            payload: Vec::new(),
            coalesce: false,
        }
    }

    fn query(name: &str) -> Request {
        Request::Query(Box::new(QueryRequest {
            name: name.into(),
            ..QueryRequest::default()
        }))
    }

    /// Every request kind with its command name, and whether a tenant may run it (events and
    /// queries named in its namespace).
    fn every_request() -> Vec<(&'static str, Request, bool)> {
        let key = |op| Request::Key {
            op,
            key: String::new(),
        };
        vec![
            ("handshake", Request::Handshake { version: 1 }, true),
            ("auth", Request::Auth { key: "k".into() }, true),
            ("members", Request::Members, true),
            (
                "members-filtered",
                Request::MembersFiltered {
                    tags: Default::default(),
                    status: String::new(),
                    name: String::new(),
                },
                true,
            ),
            (
                "get-coordinate",
                Request::Coordinate { node: "n".into() },
                true,
            ),
            ("stop", Request::Stop { seq: 1 }, true),
            ("stream", Request::Stream { filter: "*".into() }, true),
            ("handlers", Request::Handlers, true),
            ("event", event("payments/refund"), true),
            ("query", query("payments/q"), true),
            (
                "force-leave",
                Request::ForceLeave {
                    node: "x".into(),
                    prune: false,
                },
                false,
            ),
            (
                "join",
                Request::Join {
                    existing: vec!["127.0.0.1".into()],
                    replay: false,
                },
                false,
            ),
            (
                "tags",
                Request::Tags {
                    tags: Default::default(),
                    delete: Vec::new(),
                },
                false,
            ),
            (
                "monitor",
                Request::Monitor {
                    level: "debug".into(),
                },
                false,
            ),
            ("leave", Request::Leave, false),
            (
                "respond",
                Request::Respond {
                    id: 1,
                    payload: Vec::new(),
                },
                false,
            ),
            ("install-key", key(KeyOp::Install), false),
            ("use-key", key(KeyOp::Use), false),
            ("remove-key", key(KeyOp::Remove), false),
            ("list-keys", key(KeyOp::List), false),
            ("stats", Request::Stats, false),
            (
                "deploy",
                Request::Deploy {
                    deployment: vec![1],
                    module: Vec::new(),
                },
                false,
            ),
            ("deployments", Request::Deployments, false),
        ]
    }

    #[test]
    fn the_operator_may_run_everything_and_a_tenant_only_its_share() {
        let all = every_request();
        // Every command of the protocol is covered.
        for c in crate::COMMANDS.iter().chain(crate::HEARSAY_COMMANDS.iter()) {
            assert!(all.iter().any(|(n, ..)| n == c), "{c} not covered");
        }
        for (command, req, tenant_may) in &all {
            assert_eq!(
                Identity::Operator.permits(command, req),
                Ok(()),
                "{command}"
            );
            let got = tenant().permits(command, req);
            if *tenant_may {
                assert_eq!(got, Ok(()), "{command}");
            } else {
                let e = got.unwrap_err();
                assert!(
                    e.starts_with("permission denied: tenant \"payments\" may not use")
                        && e.contains(&format!("{command:?}"))
                        && e.contains("namespace payments/"),
                    "{command}: {e}"
                );
            }
        }
    }

    #[test]
    fn a_tenant_sends_events_and_queries_only_in_its_namespace() {
        for name in [
            "payments",
            "payments/",
            "paymentsx/y",
            "search/x",
            "",
            "/x",
            "x/payments/y",
        ] {
            let e = tenant().permits("event", &event(name)).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "permission denied: tenant \"payments\" may send events only in its \
                     namespace payments/ (not {name:?})"
                )
            );
            let e = tenant().permits("query", &query(name)).unwrap_err();
            assert!(
                e.contains("may send queries only in its namespace payments/"),
                "{e}"
            );
            assert!(!tenant().sees(name), "{name}");
            // The operator sends and sees them all.
            assert_eq!(Identity::Operator.permits("event", &event(name)), Ok(()));
            assert!(Identity::Operator.sees(name));
        }
        for name in ["payments/x", "payments//", "payments/a/b"] {
            assert_eq!(tenant().permits("event", &event(name)), Ok(()), "{name}");
            assert_eq!(tenant().permits("query", &query(name)), Ok(()), "{name}");
            assert!(tenant().sees(name), "{name}");
        }
    }

    #[test]
    fn a_tenant_sees_only_its_own_handlers() {
        let h = |t: Option<&str>| RpcHandler {
            tenant: t.map(String::from),
            ..RpcHandler::default()
        };
        assert!(tenant().sees_handler(&h(Some("payments"))));
        assert!(!tenant().sees_handler(&h(Some("search"))));
        assert!(!tenant().sees_handler(&h(None)));
        assert!(Identity::Operator.sees_handler(&h(None)));
        assert!(Identity::Operator.sees_handler(&h(Some("search"))));
    }

    #[test]
    fn digests_compare_every_byte() {
        let a = token_digest("pay-token");
        assert!(digests_equal(&a, &token_digest("pay-token")));
        assert!(!digests_equal(&a, &token_digest("pay-tokeN")));
        assert!(!digests_equal(&a, &token_digest("")));
        assert!(digests_equal(&token_digest(""), &token_digest("")));
        // Differences in the first or only the last byte.
        let mut b = a;
        b[31] ^= 1;
        assert!(!digests_equal(&a, &b));
        let mut b = a;
        b[0] ^= 0x80;
        assert!(!digests_equal(&a, &b));
    }

    #[test]
    fn auth_picks_the_operator_a_tenant_or_refuses() {
        let tenants = [
            TenantKey {
                name: "payments".into(),
                token_hashes: vec![token_digest("old"), token_digest("pay-token")],
            },
            TenantKey {
                name: "search".into(),
                token_hashes: vec![token_digest("search-token")],
            },
        ];
        let op = Some("operator-secret");
        let auth = |key: Option<&str>, token: &str| authenticate(key, &tenants, token);
        assert_eq!(auth(op, "operator-secret"), Some(Identity::Operator));
        assert_eq!(auth(op, "pay-token"), Some(tenant()));
        assert_eq!(auth(op, "old"), Some(tenant()));
        assert_eq!(
            auth(op, "search-token"),
            Some(Identity::Tenant {
                name: "search".into()
            })
        );
        for wrong in ["", "operator-secreT", "pay-token ", "payments", "sha256:x"] {
            assert_eq!(auth(op, wrong), None, "{wrong:?}");
        }
        // No server key: any key is the operator (as Serf), a tenant's token the tenant.
        assert_eq!(auth(None, "anything"), Some(Identity::Operator));
        assert_eq!(auth(None, ""), Some(Identity::Operator));
        assert_eq!(auth(None, "pay-token"), Some(tenant()));
        // A tenant with no tokens is never reached.
        let none = [TenantKey {
            name: "x".into(),
            token_hashes: Vec::new(),
        }];
        assert_eq!(authenticate(op, &none, ""), None);
    }
}
