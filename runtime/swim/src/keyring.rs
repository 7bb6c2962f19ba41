//! memberlist's keyring: AES-GCM keys (16/24/32 bytes), one primary that encrypts and any
//! number of secondaries that are tried when decrypting, plus the encrypted frame format.

use crate::error::{Error, Result};
use rand::RngCore;

/// An ordered set of keys; the first is the primary.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

impl Keyring {
    /// A keyring whose primary key is `primary`, plus `secondaries`.
    pub fn new(primary: Vec<u8>, secondaries: Vec<Vec<u8>>) -> Result<Self> {
        let _ = (primary, secondaries);
        unimplemented!("keyring")
    }

    /// All keys, primary first.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The key used for encryption.
    pub fn primary(&self) -> &[u8] {
        &self.keys[0]
    }

    /// Seals `plaintext` with the primary key: `[vsn][12-byte nonce][ciphertext][16-byte tag]`.
    pub fn encrypt(&self, vsn: u8, plaintext: &[u8], aad: &[u8], rng: &mut dyn RngCore) -> Vec<u8> {
        let _ = (vsn, plaintext, aad, rng);
        unimplemented!("keyring")
    }

    /// Opens a frame made by [`Keyring::encrypt`], trying every key.
    pub fn decrypt(&self, frame: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let _ = (frame, aad);
        Err(Error::DecryptFailed {
            keys: self.keys.len(),
        })
    }
}
