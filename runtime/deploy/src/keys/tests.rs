//! Key files, public key text and digests: round trips and the refusals operators will meet.

use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn key() -> SigningKey {
    SigningKey::generate(&mut StdRng::seed_from_u64(1))
}

#[test]
fn key_file_round_trips_and_is_one_line() {
    let k = key();
    let text = k.to_file_text();
    assert!(text.starts_with("ed25519-secret:") && text.ends_with('\n'));
    assert_eq!(text.lines().count(), 1);
    let back = SigningKey::from_file_text(&format!("  {text}\n\n")).unwrap();
    assert_eq!(back.public(), k.public());
}

#[test]
fn key_file_refusals_name_the_problem_without_the_secret() {
    let k = key();
    let cases = [
        ("", "does not start"),
        ("ed25519-secret:@@@@", "not standard base64"),
        ("ed25519-secret:AAAA", "3 bytes, not 32"),
        ("ed25519-secret:AAAA AAAA", "more than one line"),
    ];
    for (text, want) in cases {
        match SigningKey::from_file_text(text) {
            Err(Error::KeyFile { reason }) => assert!(reason.contains(want), "{text:?}: {reason}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let public = k.public().to_string();
    let err = SigningKey::from_file_text(&public).unwrap_err().to_string();
    assert!(err.contains("public key"), "{err}");
    assert!(!err.contains(&public[8..]), "error quotes the key: {err}");
}

#[test]
fn debug_shows_only_the_public_half() {
    let k = key();
    let shown = format!("{k:?}");
    let secret = k.to_file_text();
    let secret = secret.trim().strip_prefix("ed25519-secret:").unwrap();
    assert!(!shown.contains(secret));
    assert!(shown.contains(&k.public().to_string()));
}

#[test]
fn public_key_text_round_trips() {
    let p = key().public();
    let text = p.to_string();
    assert!(text.starts_with("ed25519:") && text.ends_with('='));
    assert_eq!(text.parse::<PublicKey>().unwrap(), p);
}

#[test]
fn public_key_refusals_name_the_problem() {
    let p = key().public().to_string();
    let cases = [
        (p[8..].to_string(), "does not start"),
        (format!(" {p}"), "does not start"),
        (format!("{p}\n"), "not standard base64"),
        ("ed25519:AAAA".to_string(), "3 bytes, not 32"),
        (key().to_file_text(), "secret key"),
    ];
    for (text, want) in cases {
        match text.parse::<PublicKey>() {
            Err(Error::PublicKey { reason }) => {
                assert!(reason.contains(want), "{text:?}: {reason}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn public_key_must_be_a_curve_point() {
    // y = 2 has no x on the curve (not a quadratic residue), so it does not decompress.
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    let text = format!("ed25519:{}", STANDARD.encode(bytes));
    let err = text.parse::<PublicKey>().unwrap_err().to_string();
    assert!(err.contains("not a valid Ed25519 point"), "{err}");
}

#[test]
fn digest_text_is_lowercase_hex_and_round_trips() {
    let d = Digest::of(b"abc");
    assert_eq!(
        d.to_string(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(format!("{d:?}"), d.to_string());
    assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    assert_eq!(d.to_string().to_uppercase().parse::<Digest>().unwrap(), d);
}

#[test]
fn digest_refusals() {
    assert!(matches!("ab".parse::<Digest>(), Err(Error::Digest { .. })));
    let bad = "g".repeat(64);
    assert!(matches!(bad.parse::<Digest>(), Err(Error::Digest { .. })));
    let multibyte = format!("é{}", "a".repeat(62));
    assert_eq!(multibyte.len(), 64);
    assert!(matches!(
        multibyte.parse::<Digest>(),
        Err(Error::Digest { .. })
    ));
}
