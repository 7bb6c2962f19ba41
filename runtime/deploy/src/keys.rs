//! Keys and digests: the operator's Ed25519 [`SigningKey`] and its file form, the
//! [`PublicKey`] agents trust, and the sha256 [`Digest`] that names modules, records and sets.
//!
//! Text forms are chosen to be unambiguous in config files and logs: `ed25519:BASE64` for a
//! public key, `ed25519-secret:BASE64` for a secret key file (so one is never mistaken for the
//! other) and lowercase hex for a digest, as `sha256sum` prints it.

use crate::error::Error;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// The prefix of a public key's text form.
const PUBLIC_PREFIX: &str = "ed25519:";
/// The prefix of a secret key file's one line.
const SECRET_PREFIX: &str = "ed25519-secret:";

/// An operator's Ed25519 secret key. Its `Debug` shows only the public half; the secret is
/// zeroed when dropped (by `ed25519-dalek`).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from `rng`'s 32 bytes (use an OS-backed RNG outside tests).
    pub fn generate<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The key whose 32-byte seed is `seed` (deterministic keys for tests and simulators).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The key file's text: one line, `ed25519-secret:BASE64(seed)\n`.
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", STANDARD.encode(self.0.to_bytes()))
    }

    /// Parses [`to_file_text`](Self::to_file_text)'s form; surrounding whitespace is ignored.
    /// The error says what was wrong without repeating the text.
    pub fn from_file_text(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bad = |reason: &str| Error::KeyFile {
            reason: reason.to_string(),
        };
        let Some(b64) = text.strip_prefix(SECRET_PREFIX) else {
            if text.starts_with(PUBLIC_PREFIX) {
                return Err(bad("this is a public key (ed25519:...), not a secret key"));
            }
            return Err(bad("it does not start with \"ed25519-secret:\""));
        };
        if b64.contains(char::is_whitespace) {
            return Err(bad("it holds more than one line or word"));
        }
        // The decoder's own message could quote a character of the secret: say it generically.
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| bad("the text after \"ed25519-secret:\" is not standard base64"))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| Error::KeyFile {
            reason: format!("the seed is {} bytes, not 32", b.len()),
        })?;
        Ok(Self::from_seed(seed))
    }

    /// The public half, which agents list as trusted.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// An Ed25519 signature over `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public())
    }
}

/// An Ed25519 public key: whom a deployment says signed it, and what agents trust. Always a
/// valid curve point (checked when parsed).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Checks `signature` over `message` with `verify_strict`, which also refuses weak keys and
    /// malleated signatures, so one (key, message) pair has one accepted signature.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    /// Parses exactly `ed25519:BASE64` (standard alphabet, padded, no whitespace).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::PublicKey { reason };
        let Some(b64) = s.strip_prefix(PUBLIC_PREFIX) else {
            if s.starts_with(SECRET_PREFIX) {
                return Err(bad(
                    "this is a secret key file's text, not a public key".into()
                ));
            }
            return Err(bad(format!("{s:.80?} does not start with \"ed25519:\"")));
        };
        let bytes = STANDARD.decode(b64).map_err(|e| {
            bad(format!(
                "the text after \"ed25519:\" is not standard base64 ({e})"
            ))
        })?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| bad(format!("the key is {} bytes, not 32", b.len())))?;
        if ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_err() {
            return Err(bad("the 32 bytes are not a valid Ed25519 point".into()));
        }
        Ok(PublicKey(bytes))
    }
}

/// A sha256 digest: a module's content, a record's id, a set's summary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The sha256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;

    /// Parses 64 hexadecimal characters (either case).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::Digest { reason };
        if s.len() != 64 {
            return Err(bad(format!("{} characters, not 64", s.len())));
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
            let hex = std::str::from_utf8(pair)
                .ok()
                .filter(|p| p.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| bad(format!("{s:?} holds a character that is not hex")))?;
            *byte = u8::from_str_radix(hex, 16).map_err(|e| bad(e.to_string()))?;
        }
        Ok(Digest(out))
    }
}

// In a spec a digest is its hex text, as operators see it in `sha256sum` output.
impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
