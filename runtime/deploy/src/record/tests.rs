//! Signing and verifying deployments: round trips, every refusal with its error, the
//! supersedes order, and a property test of the codec.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

fn spec(name: &str, version: u64) -> Spec {
    Spec {
        name: name.into(),
        version,
        module: Some(ModuleRef {
            sha256: Digest::of(name.as_bytes()),
            size: 1234,
        }),
        events: "query:greet".into(),
        selector: BTreeMap::from([("role".into(), "web|api".into())]),
        limits: BTreeMap::from([("memory".into(), "32MiB".into())]),
        grants: Grants {
            dirs: vec!["/var/lib/greet".into()],
            env: BTreeMap::from([("GREETING".into(), "hi".into())]),
            emit: true,
            clocks: false,
            ..Grants::default()
        },
        signed_at: 1_700_000_000,
    }
}

/// The wire JSON of `d` with `field` replaced by `f(old)`.
fn tamper(d: &Deployment, field: &str, f: impl Fn(&str) -> String) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&d.encode()).unwrap();
    let old = v[field].as_str().unwrap().to_string();
    v[field] = Value::String(f(&old));
    serde_json::to_vec(&v).unwrap()
}

fn b64_edit(text: &str, edit: impl Fn(&mut Vec<u8>)) -> String {
    let mut bytes = STANDARD.decode(text).unwrap();
    edit(&mut bytes);
    STANDARD.encode(bytes)
}

/// Encodes a correctly signed record for any spec bytes, even ones `sign` would refuse.
fn hand_signed_bytes(spec_bytes: &[u8], key: &SigningKey) -> Vec<u8> {
    let sig = key.sign(&signed_message(spec_bytes));
    serde_json::to_vec(&serde_json::json!({
        "spec": STANDARD.encode(spec_bytes),
        "signer": key.public().to_string(),
        "signature": STANDARD.encode(sig),
    }))
    .unwrap()
}

fn hand_signed(spec: &Spec, key: &SigningKey) -> Vec<u8> {
    hand_signed_bytes(&serde_json::to_vec(spec).unwrap(), key)
}

#[test]
fn sign_then_decode_round_trips() {
    let d = Deployment::sign(spec("greet", 3), &key(1)).unwrap();
    let back = Deployment::decode(&d.encode()).unwrap();
    assert_eq!(back, d);
    assert_eq!(back.id(), Digest::of(&d.encode()));
    assert_eq!(back.signer(), key(1).public());
    assert_eq!(back.spec(), &spec("greet", 3));
    let v: Value = serde_json::from_slice(&d.encode()).unwrap();
    assert!(v["signer"].as_str().unwrap().starts_with("ed25519:"));
}

#[test]
fn the_signature_covers_the_domain_prefix() {
    let d = Deployment::sign(spec("greet", 1), &key(1)).unwrap();
    let spec_bytes = serde_json::to_vec(&spec("greet", 1)).unwrap();
    let bare = key(1).sign(&spec_bytes);
    assert_ne!(bare, *d.signature(), "signed without the prefix");
    // A signature over the bare spec bytes (no prefix) does not verify as a deployment.
    let mut v: Value = serde_json::from_slice(&d.encode()).unwrap();
    v["signature"] = Value::String(STANDARD.encode(bare));
    let err = Deployment::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(matches!(err, Error::BadSignature { .. }), "{err:?}");
}

#[test]
fn tampered_spec_bytes_are_refused() {
    let d = Deployment::sign(spec("greet", 1), &key(1)).unwrap();
    let bytes = tamper(&d, "spec", |s| {
        b64_edit(s, |b| {
            let i = b.iter().position(|&c| c == b'1').unwrap();
            b[i] = b'9';
        })
    });
    let signer = key(1).public().to_string();
    assert_eq!(
        Deployment::decode(&bytes),
        Err(Error::BadSignature { signer })
    );
}

#[test]
fn tampered_signature_is_refused() {
    let d = Deployment::sign(spec("greet", 1), &key(1)).unwrap();
    let bytes = tamper(&d, "signature", |s| b64_edit(s, |b| b[5] ^= 1));
    let signer = key(1).public().to_string();
    assert_eq!(
        Deployment::decode(&bytes),
        Err(Error::BadSignature { signer })
    );
    let short = tamper(&d, "signature", |s| b64_edit(s, |b| b.truncate(63)));
    assert!(matches!(
        Deployment::decode(&short),
        Err(Error::Malformed {
            what: "deployment signature",
            ..
        })
    ));
}

#[test]
fn a_wrong_signer_is_refused() {
    let d = Deployment::sign(spec("greet", 1), &key(1)).unwrap();
    let other = key(2).public();
    let bytes = tamper(&d, "signer", |_| other.to_string());
    assert_eq!(
        Deployment::decode(&bytes),
        Err(Error::BadSignature {
            signer: other.to_string()
        })
    );
    let bytes = tamper(&d, "signer", |_| "ed25519:nope".into());
    assert!(matches!(
        Deployment::decode(&bytes),
        Err(Error::PublicKey { .. })
    ));
}

#[test]
fn invalid_names_are_refused_when_signing_and_decoding() {
    let long = "a".repeat(65);
    for name in [
        "",
        "Greet",
        "-greet",
        ".x",
        "a b",
        "a/b",
        "é",
        long.as_str(),
    ] {
        let err = Deployment::sign(spec(name, 1), &key(1)).unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "{name:?}: {err:?}"
        );
    }
    let max = "a".repeat(64);
    for name in ["a", "0", "greet.v2_x-y", max.as_str()] {
        Deployment::sign(spec(name, 1), &key(1)).unwrap();
    }
    // Validly signed, but the name breaks the rules: decode refuses it too.
    let bytes = hand_signed(&spec("Bad", 1), &key(1));
    assert!(matches!(
        Deployment::decode(&bytes),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn version_zero_is_refused() {
    assert_eq!(
        Deployment::sign(spec("greet", 0), &key(1)),
        Err(Error::VersionZero)
    );
    assert_eq!(
        Deployment::decode(&hand_signed(&spec("greet", 0), &key(1))),
        Err(Error::VersionZero)
    );
}

#[test]
fn oversized_fields_are_refused() {
    let mut s = spec("greet", 1);
    s.events = "x".repeat(MAX_EVENTS_LEN + 1);
    assert!(matches!(
        Deployment::sign(s, &key(1)),
        Err(Error::TooLarge {
            what: "events (bytes)",
            ..
        })
    ));
    let mut s = spec("greet", 1);
    s.limits = (0..=MAX_ENTRIES)
        .map(|i| (i.to_string(), "1".into()))
        .collect();
    assert!(matches!(
        Deployment::sign(s, &key(1)),
        Err(Error::TooLarge { .. })
    ));
    let mut s = spec("greet", 1);
    s.module.as_mut().unwrap().size = 0;
    assert!(matches!(
        Deployment::sign(s, &key(1)),
        Err(Error::InvalidField {
            field: "module.size",
            ..
        })
    ));
    let huge = vec![b' '; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        Deployment::decode(&huge),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn garbage_is_refused_as_malformed() {
    let d = Deployment::sign(spec("greet", 1), &key(1)).unwrap();
    let mut extra: Value = serde_json::from_slice(&d.encode()).unwrap();
    extra["more"] = Value::Bool(true);
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"{\"spec\": 1}".to_vec(),
        serde_json::to_vec(&extra).unwrap(),
        tamper(&d, "spec", |_| "***".into()),
    ];
    for bytes in cases {
        let err = Deployment::decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    }
    // Signed, but the signed bytes are not a spec: refused after the signature checks out.
    let err = Deployment::decode(&hand_signed_bytes(b"{\"name\": 1}", &key(1))).unwrap_err();
    assert!(
        matches!(err, Error::Malformed { what: "spec", .. }),
        "{err:?}"
    );
    // An unknown spec field could be a restriction this version would drop: refused.
    let mut v = serde_json::to_value(spec("greet", 1)).unwrap();
    v["deny_net"] = Value::Bool(true);
    let err = Deployment::decode(&hand_signed_bytes(
        &serde_json::to_vec(&v).unwrap(),
        &key(1),
    ));
    assert!(
        matches!(err, Err(Error::Malformed { what: "spec", .. })),
        "{err:?}"
    );
}

#[test]
fn tombstones_sign_and_decode() {
    let mut s = spec("greet", 4);
    s.module = None;
    let d = Deployment::sign(s, &key(1)).unwrap();
    assert!(d.is_tombstone());
    assert_eq!(Deployment::decode(&d.encode()).unwrap(), d);
}

#[test]
fn higher_versions_supersede() {
    let v1 = Deployment::sign(spec("greet", 1), &key(1)).unwrap();
    let v2 = Deployment::sign(spec("greet", 2), &key(1)).unwrap();
    assert!(v2.supersedes(&v1));
    assert!(!v1.supersedes(&v2));
    assert!(!v1.supersedes(&v1));
    let other = Deployment::sign(spec("other", 9), &key(1)).unwrap();
    assert!(!other.supersedes(&v1) && !v1.supersedes(&other));
}

#[test]
fn equal_versions_break_the_tie_by_signature_symmetrically() {
    let a = Deployment::sign(spec("greet", 2), &key(1)).unwrap();
    let mut s = spec("greet", 2);
    s.events = "user:deploy".into();
    let b = Deployment::sign(s, &key(2)).unwrap();
    assert_ne!(a.supersedes(&b), b.supersedes(&a), "exactly one wins");
    let (winner, loser) = if a.signature() > b.signature() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(winner.supersedes(loser));
}

fn arb_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect())
}

fn arb_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(arb_text(12), arb_text(24), 0..4)
}

fn arb_grants() -> impl Strategy<Value = Grants> {
    (
        proptest::collection::vec(
            arb_text(20).prop_filter("non-empty", |s| !s.is_empty()),
            0..3,
        ),
        arb_map(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(dirs, env, emit, clocks)| Grants {
            dirs,
            env,
            emit,
            clocks,
            ..Grants::default()
        })
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        "[a-z0-9][a-z0-9._-]{0,63}",
        1..=u64::MAX,
        proptest::option::of((any::<[u8; 32]>(), 1..=u64::MAX)),
        arb_text(40),
        (arb_map(), arb_map()),
        arb_grants(),
        any::<u64>(),
    )
        .prop_map(
            |(name, version, module, events, (selector, limits), grants, signed_at)| Spec {
                name,
                version,
                module: module.map(|(h, size)| ModuleRef {
                    sha256: Digest(h),
                    size,
                }),
                events,
                selector,
                limits,
                grants,
                signed_at,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn encode_decode_round_trips(spec in arb_spec(), seed in any::<u8>()) {
        let d = Deployment::sign(spec, &key(seed)).unwrap();
        let back = Deployment::decode(&d.encode()).unwrap();
        prop_assert_eq!(back.encode(), d.encode());
        prop_assert_eq!(back, d);
    }
}
