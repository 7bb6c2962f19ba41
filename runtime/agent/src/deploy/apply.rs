//! From a signed deployment to a handler this agent may run: does its selector pick this
//! node (Serf's tag filter: tag name -> regular expression), do its limits parse, does it ask
//! for no more than this agent's ceiling (`deploy_grants`) allows. Each refusal says why, for
//! `hearsay deployments`.

use crate::config::handlers::{kv_path, parse_dir_grant, parse_http_grant, parse_size};
use crate::config::{DeployCeiling, HandlerConfig};
use crate::conventions::parse_go_duration;
use crate::filter::EventFilter;
use crate::handlers::DEPLOYED_PREFIX;
use hearsay_deploy::Spec;
use hearsay_host::{Grants, Limits};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Whether a deployment's selector picks a node with `tags`: every selector tag's regular
/// expression matches the node's value of that tag (a missing tag is the empty string), as
/// Serf's `-tag` query filter. A selector with a bad expression picks no node.
pub(super) fn selects(
    selector: &BTreeMap<String, String>,
    tags: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(tag, expr)| {
        regex::Regex::new(expr)
            .is_ok_and(|re| re.is_match(tags.get(tag).map_or("", String::as_str)))
    })
}

/// The handler a deployment runs as on this agent, with its module at `module`; `Err` says
/// why this agent will not run it.
pub(super) fn handler_config(
    spec: &Spec,
    module: PathBuf,
    ceiling: &DeployCeiling,
    data_dir: Option<&Path>,
) -> Result<HandlerConfig, String> {
    for (tag, expr) in &spec.selector {
        regex::Regex::new(expr).map_err(|e| format!("selector {tag}={expr:?}: {e}"))?;
    }
    let filter =
        EventFilter::parse(&spec.events).map_err(|e| format!("events {:?}: {e}", spec.events))?;
    let limits = limits(&spec.limits)?;
    let name = format!("{DEPLOYED_PREFIX}{}", spec.name);
    let mut grants = grants(spec, ceiling)?;
    if let Some(kv) = &mut grants.kv {
        let dir = data_dir.ok_or("grants.kv needs this agent's data_dir")?;
        kv.path = kv_path(dir, &name);
    }
    Ok(HandlerConfig {
        name,
        filter,
        module,
        limits,
        grants,
        tenant: None,
        tenant_quota: None,
    })
}

/// A deployment's limits (`memory`, `timeout`, `fuel`, `queue`, `concurrency`) over the
/// host's defaults.
fn limits(given: &BTreeMap<String, String>) -> Result<Limits, String> {
    let mut l = Limits::default();
    for (key, value) in given {
        let whole = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("limits.{key}: {value:?} is not a whole number"))
        };
        match key.as_str() {
            "memory" => {
                let bytes = parse_size(value).map_err(|e| format!("limits.memory: {e}"))?;
                l.memory_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            }
            "timeout" => {
                l.timeout = parse_go_duration(value).map_err(|e| format!("limits.timeout: {e}"))?
            }
            "fuel" => l.fuel = Some(whole()?),
            "queue" => l.queue = usize::try_from(whole()?).unwrap_or(usize::MAX),
            "concurrency" => match whole()? {
                0 => return Err("limits.concurrency: must be at least 1".into()),
                n => l.concurrency = usize::try_from(n).unwrap_or(usize::MAX),
            },
            other => {
                return Err(format!(
                    "unknown limit {other:?} (memory, timeout, fuel, queue, concurrency)"
                ))
            }
        }
    }
    Ok(l)
}

/// A deployment's grants, as this agent runs them (a command's argv is this agent's), checked
/// against the ceiling.
fn grants(spec: &Spec, ceiling: &DeployCeiling) -> Result<Grants, String> {
    let asked = &spec.grants;
    let dirs = |key: &str, list: &[String]| {
        list.iter()
            .map(|d| parse_dir_grant(d).map_err(|e| format!("grants.{key} {e}")))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut commands = BTreeMap::new();
    for name in &asked.commands {
        // A deployment names a command; what it runs is this agent's entry, if there is one.
        let argv = ceiling.commands.get(name).cloned().unwrap_or_default();
        commands.insert(name.clone(), argv);
    }
    let kv = match &asked.kv {
        None => None,
        Some(size) => Some(hearsay_host::KvGrant {
            path: PathBuf::new(),
            quota: parse_size(size).map_err(|e| format!("grants.kv: {e}"))?,
        }),
    };
    let g = Grants {
        emit: asked.emit,
        emit_prefix: None,
        dirs: dirs("dirs", &asked.dirs)?,
        write_dirs: dirs("write_dirs", &asked.write_dirs)?,
        env: asked.env.clone().into_iter().collect(),
        clocks: asked.clocks,
        commands,
        kv,
        tags: asked.tags.clone(),
        http: asked
            .http
            .iter()
            .map(|e| parse_http_grant(e).map_err(|e| format!("grants.http: {e}")))
            .collect::<Result<_, _>>()?,
    };
    match ceiling.refusal(&g, "this agent's deploy_grants") {
        Some(why) => Err(why),
        None => Ok(g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "greet".into(),
            version: 1,
            module: None,
            events: "query:greet".into(),
            selector: BTreeMap::new(),
            limits: BTreeMap::new(),
            grants: Default::default(),
            signed_at: 0,
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_serf_tag_filters() {
        let sel = tags(&[("role", "^web$")]);
        assert!(selects(&sel, &tags(&[("role", "web")])));
        assert!(!selects(&sel, &tags(&[("role", "db")])));
        assert!(!selects(&sel, &tags(&[])));
        assert!(selects(&tags(&[]), &tags(&[("role", "db")])));
        // A missing tag is the empty string; a bad expression picks nothing.
        assert!(selects(&tags(&[("dc", "^$")]), &tags(&[])));
        assert!(!selects(&tags(&[("role", "(")]), &tags(&[("role", "(")])));
    }

    #[test]
    fn a_plain_deployment_becomes_a_deploy_prefixed_handler() {
        let mut s = spec();
        s.limits = tags(&[("memory", "32MiB"), ("timeout", "2s"), ("concurrency", "2")]);
        let h = handler_config(&s, "/m.wasm".into(), &DeployCeiling::default(), None).unwrap();
        assert_eq!(h.name, "deploy/greet");
        assert_eq!(h.filter.to_string(), "query:greet");
        assert_eq!(h.limits.memory_bytes, 32 << 20);
        assert_eq!(h.limits.timeout, std::time::Duration::from_secs(2));
        assert_eq!(h.limits.concurrency, 2);
        assert_eq!(h.grants, Grants::default());
    }

    #[test]
    fn bad_limits_and_filters_are_refused_with_the_reason() {
        let none = DeployCeiling::default();
        for (k, v, why) in [
            ("memory", "lots", "limits.memory"),
            ("timeout", "soon", "limits.timeout"),
            ("concurrency", "0", "at least 1"),
            ("color", "red", "unknown limit"),
        ] {
            let mut s = spec();
            s.limits = tags(&[(k, v)]);
            let e = handler_config(&s, "/m".into(), &none, None).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let mut s = spec();
        s.events = "no-such-event".into();
        assert!(handler_config(&s, "/m".into(), &none, None).is_err());
    }

    #[test]
    fn grants_beyond_the_ceiling_are_refused() {
        // A real directory tree: the ceiling, a directory inside it, a link inside it that
        // leads out, and a sibling whose name starts the same.
        let root = std::env::temp_dir().join(format!("hearsay-ceiling-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let allowed = root.join("data");
        std::fs::create_dir_all(allowed.join("a")).unwrap();
        std::fs::create_dir_all(root.join("database")).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("out")).unwrap();
        let ceiling = DeployCeiling {
            dirs: vec![allowed.clone()],
            env: vec!["REGION".into()],
            clocks: false,
            emit: true,
            ..DeployCeiling::default()
        };
        let with = |f: &dyn Fn(&mut Spec)| {
            let mut s = spec();
            f(&mut s);
            handler_config(&s, "/m".into(), &ceiling, None)
        };
        let inside = format!("{}:/data", allowed.join("a").display());
        let h = with(&|s| {
            s.grants.dirs = vec![inside.clone()];
            s.grants.env = tags(&[("REGION", "eu")]);
            s.grants.emit = true;
        })
        .unwrap();
        assert_eq!(h.grants.dirs[0].guest, "/data");
        assert!(h.grants.emit);
        let climb = format!("{}/../../etc", allowed.display());
        let link = allowed.join("out").display().to_string();
        let sibling = root.join("database").display().to_string();
        let no_guest = format!("{}:", allowed.join("a").display());
        let missing = allowed.join("nope").display().to_string();
        for dir in [
            "/etc".to_owned(),
            climb,
            "data".to_owned(),
            link,
            sibling,
            no_guest,
            missing,
            String::new(),
        ] {
            assert!(
                with(&|s| s.grants.dirs = vec![dir.clone()]).is_err(),
                "{dir:?} passed"
            );
        }
        assert!(with(&|s| s.grants.env = tags(&[("HOME", "/")])).is_err());
        assert!(with(&|s| s.grants.clocks = true).is_err());
        // An empty or relative ceiling entry allows nothing.
        for bad in ["", "data"] {
            let c = DeployCeiling {
                dirs: vec![bad.into()],
                ..DeployCeiling::default()
            };
            let mut s = spec();
            s.grants.dirs = vec![allowed.join("a").display().to_string()];
            assert!(
                handler_config(&s, "/m".into(), &c, None).is_err(),
                "{bad:?}"
            );
        }
        // Nothing allowed by default.
        let mut s = spec();
        s.grants.emit = true;
        let e = handler_config(&s, "/m".into(), &DeployCeiling::default(), None).unwrap_err();
        assert!(e.contains("emit"), "{e}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn capabilities_beyond_the_ceiling_are_refused() {
        let root =
            std::env::temp_dir().join(format!("hearsay-ceiling-caps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let out = root.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let ceiling = DeployCeiling {
            write_dirs: vec![out.clone()],
            commands: BTreeMap::from([("reload".to_owned(), vec!["/bin/true".to_owned()])]),
            kv: Some(1 << 20),
            tags: vec!["service:*".into()],
            http: vec!["http://127.0.0.1:8500/v1".into()],
            ..DeployCeiling::default()
        };
        let with = |f: &dyn Fn(&mut Spec)| {
            let mut s = spec();
            f(&mut s);
            handler_config(&s, "/m".into(), &ceiling, Some(Path::new("/var/lib/h")))
        };
        let h = with(&|s| s.grants.http = vec!["http://127.0.0.1:8500/v1/kv/".into()]).unwrap();
        assert_eq!(h.grants.http[0].to_string(), "http://127.0.0.1:8500/v1/kv/");
        let h = with(&|s| {
            s.grants.write_dirs = vec![format!("{}:/out", out.display())];
            s.grants.commands = vec!["reload".into()];
            s.grants.kv = Some("64KiB".into());
            s.grants.tags = vec!["service:web".into(), "service:*".into()];
        })
        .unwrap();
        assert_eq!(h.grants.write_dirs[0].guest, "/out");
        // The argv is this agent's, never the deployment's.
        assert_eq!(h.grants.commands["reload"], ["/bin/true"]);
        let kv = h.grants.kv.unwrap();
        assert_eq!(
            (kv.quota, kv.path),
            (64 << 10, PathBuf::from("/var/lib/h/kv/deploy%2Fgreet.redb"))
        );
        for (what, f) in [
            (
                "write_dirs",
                &(|s: &mut Spec| s.grants.write_dirs = vec!["/etc".into()]) as &dyn Fn(&mut Spec),
            ),
            ("write_dirs", &|s: &mut Spec| {
                s.grants.dirs = vec![out.display().to_string()]
            }),
            ("commands", &|s: &mut Spec| {
                s.grants.commands = vec!["rm".into()]
            }),
            ("kv", &|s: &mut Spec| s.grants.kv = Some("2MiB".into())),
            ("kv", &|s: &mut Spec| s.grants.kv = Some("0".into())),
            ("tags", &|s: &mut Spec| s.grants.tags = vec!["*".into()]),
            ("tags", &|s: &mut Spec| s.grants.tags = vec!["role".into()]),
            ("http", &|s: &mut Spec| {
                s.grants.http = vec!["http://127.0.0.1:1/".into()]
            }),
            ("http", &|s: &mut Spec| {
                s.grants.http = vec!["http://127.0.0.1:8500/v2/".into()]
            }),
            ("http", &|s: &mut Spec| {
                s.grants.http = vec!["https://127.0.0.1:8500/v1/".into()]
            }),
            ("http", &|s: &mut Spec| {
                s.grants.http = vec!["http://127.0.0.1:8500/v1x".into()]
            }),
        ] {
            assert!(with(f).is_err(), "{what} passed");
        }
        // A store needs the agent's data dir.
        let mut s = spec();
        s.grants.kv = Some("1KiB".into());
        assert!(handler_config(&s, "/m".into(), &ceiling, None).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
