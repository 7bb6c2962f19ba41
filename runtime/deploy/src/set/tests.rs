//! Merge outcomes, tombstones, history, digests and the set's encoding.

use super::*;
use crate::keys::SigningKey;
use crate::record::{Grants, ModuleRef, Spec};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

fn spec(name: &str, version: u64) -> Spec {
    Spec {
        name: name.into(),
        version,
        module: Some(ModuleRef {
            sha256: Digest::of(format!("{name}@{version}").as_bytes()),
            size: 100,
        }),
        events: "query:greet".into(),
        selector: BTreeMap::new(),
        limits: BTreeMap::new(),
        grants: Grants::default(),
        signed_at: 0,
    }
}

fn dep(name: &str, version: u64) -> Deployment {
    Deployment::sign(spec(name, version), &key(1)).unwrap()
}

fn tombstone(name: &str, version: u64) -> Deployment {
    let mut s = spec(name, version);
    s.module = None;
    Deployment::sign(s, &key(1)).unwrap()
}

fn set() -> DeploySet {
    DeploySet::new(vec![key(1).public(), key(2).public()])
}

#[test]
fn merge_outcomes() {
    let mut s = set();
    assert_eq!(s.merge(dep("greet", 2)), Merge::Added);
    assert_eq!(s.merge(dep("greet", 2)), Merge::Known);
    assert_eq!(s.merge(dep("greet", 1)), Merge::Stale { have: 2 });
    assert_eq!(s.merge(dep("greet", 3)), Merge::Replaced { old_version: 2 });
    assert_eq!(s.get("greet").unwrap().version(), 3);
    assert_eq!(s.history("greet")[0].version(), 2);
    assert!(s.history("other").is_empty());
    let stranger = Deployment::sign(spec("greet", 9), &key(3)).unwrap();
    assert_eq!(
        s.merge(stranger),
        Merge::Untrusted {
            signer: key(3).public()
        }
    );
    assert_eq!(s.get("greet").unwrap().version(), 3, "untrusted not stored");
}

#[test]
fn no_trusted_keys_means_everything_is_untrusted() {
    let mut s = DeploySet::new(Vec::new());
    assert!(matches!(s.merge(dep("greet", 1)), Merge::Untrusted { .. }));
    assert!(s.is_empty());
}

#[test]
fn a_tombstone_blocks_an_older_redeploy() {
    let mut s = set();
    s.merge(dep("greet", 1));
    assert_eq!(
        s.merge(tombstone("greet", 2)),
        Merge::Replaced { old_version: 1 }
    );
    assert_eq!(s.merge(dep("greet", 1)), Merge::Stale { have: 2 });
    assert!(s.get("greet").unwrap().is_tombstone());
    assert_eq!(s.current().count(), 1, "tombstones stay in the set");
    assert_eq!(s.merge(dep("greet", 3)), Merge::Replaced { old_version: 2 });
}

#[test]
fn equal_versions_converge_whatever_the_order() {
    let a = Deployment::sign(spec("greet", 2), &key(1)).unwrap();
    let b = Deployment::sign(spec("greet", 2), &key(2)).unwrap();
    let (mut x, mut y) = (set(), set());
    x.merge(a.clone());
    x.merge(b.clone());
    y.merge(b);
    y.merge(a);
    assert_eq!(x.digest(), y.digest());
    assert_eq!(x.get("greet"), y.get("greet"));
}

#[test]
fn history_is_bounded_and_newest_first() {
    let mut s = set();
    for v in 1..=12 {
        s.merge(dep("greet", v));
    }
    let versions: Vec<u64> = s.history("greet").iter().map(|d| d.version()).collect();
    assert_eq!(versions, vec![11, 10, 9, 8, 7, 6, 5, 4]);
}

#[test]
fn current_is_sorted_by_name() {
    let mut s = set();
    for n in ["zeta", "alpha", "mid"] {
        s.merge(dep(n, 1));
    }
    let names: Vec<&str> = s.current().map(|d| d.name()).collect();
    assert_eq!(names, vec!["alpha", "mid", "zeta"]);
}

#[test]
fn digests_are_equal_exactly_when_sets_are() {
    let (mut x, mut y) = (set(), set());
    assert_eq!(x.digest(), y.digest(), "empty sets");
    x.merge(dep("a", 1));
    assert_ne!(x.digest(), y.digest());
    y.merge(dep("a", 1));
    assert_eq!(x.digest(), y.digest());
    x.merge(dep("b", 1));
    y.merge(dep("b", 2));
    assert_ne!(x.digest(), y.digest(), "same names, different versions");
    x.merge(dep("b", 2));
    assert_eq!(x.digest(), y.digest(), "history does not count");
    assert_ne!(x.history("b"), y.history("b"));
}

#[test]
fn encode_decode_round_trips_with_history() {
    let mut s = set();
    for v in 1..=10 {
        s.merge(dep("greet", v));
    }
    s.merge(dep("other", 1));
    s.merge(tombstone("gone", 4));
    let back = DeploySet::decode(&s.encode(), vec![key(1).public(), key(2).public()]).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.digest(), s.digest());
}

#[test]
fn decode_drops_records_no_longer_trusted_or_invalid() {
    let mut s = set();
    s.merge(dep("mine", 1));
    s.merge(Deployment::sign(spec("theirs", 1), &key(2)).unwrap());
    let only_one = DeploySet::decode(&s.encode(), vec![key(1).public()]).unwrap();
    assert_eq!(only_one.len(), 1);
    assert!(only_one.get("mine").is_some());

    let mut v: serde_json::Value = serde_json::from_slice(&s.encode()).unwrap();
    v["records"][0]["signature"] = serde_json::Value::String("AAAA".into());
    let bytes = serde_json::to_vec(&v).unwrap();
    let results = decode_records(&bytes).unwrap();
    assert!(results[0].is_err() && results[1].is_ok());
    let back = DeploySet::decode(&bytes, vec![key(1).public(), key(2).public()]).unwrap();
    assert_eq!(back.len(), 1);
}

#[test]
fn decode_refuses_a_wrong_layout() {
    for bytes in [
        &b""[..],
        b"[]",
        b"{\"records\": []}",
        b"{\"format\": \"other\", \"records\": []}",
    ] {
        let err = DeploySet::decode(bytes, vec![]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Malformed {
                    what: "deployment set",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn newer_than_finds_what_the_peer_lacks() {
    let mut mine = set();
    mine.merge(dep("a", 2));
    mine.merge(dep("b", 1));
    mine.merge(dep("c", 1));
    let theirs = vec![dep("a", 1), dep("b", 3), dep("a", 2)];
    let names: Vec<(String, u64)> = mine
        .newer_than(&theirs)
        .iter()
        .map(|d| (d.name().to_string(), d.version()))
        .collect();
    // a: they hold v2 too (the best of their two); b: theirs is newer; c: they lack it.
    assert_eq!(names, vec![("c".to_string(), 1)]);
    assert_eq!(mine.newer_than(&[]).len(), 3);
}

#[test]
fn records_list_round_trips() {
    let list = vec![dep("a", 1), tombstone("b", 2)];
    let back: Vec<Deployment> = decode_records(&encode_records(&list))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, list);
}
