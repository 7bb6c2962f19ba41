//! memberlist's keyring: AES-GCM keys (16/24/32 bytes), one primary that encrypts and any
//! number of secondaries that are tried when decrypting, plus the encrypted frame format and
//! the keys' base64 form (Serf's `-encrypt` value and keyring file entries; the keyring file's
//! JSON is the agent's, `hearsay_agent::keyring_file`).
//!
//! Frame: `[vsn u8][12-byte nonce][ciphertext][16-byte GCM tag]`. Version 0 pads the plaintext
//! PKCS7-style to 16 bytes before sealing (memberlist protocol 1); version 1 does not pad. The
//! version byte itself is not authenticated (memberlist does not put it in the additional data).

use crate::error::{Error, Result};
use aes_gcm::aead::consts::U12;
use aes_gcm::aes::Aes192;
use aes_gcm::{AeadInPlace, Aes128Gcm, Aes256Gcm, AesGcm, KeyInit, Nonce, Tag};
use base64::Engine as _;
use rand::RngCore;

/// Size of the encryption version byte in front of every frame.
pub const VERSION_SIZE: usize = 1;
/// Size of the random GCM nonce that follows the version byte.
pub const NONCE_SIZE: usize = 12;
/// Size of the GCM authentication tag at the end of every frame.
pub const TAG_SIZE: usize = 16;
/// The AES block size version 0 pads to.
pub const BLOCK_SIZE: usize = 16;
/// The highest encryption version memberlist defines (`maxEncryptionVersion`).
pub const MAX_ENCRYPTION_VERSION: u8 = 1;

/// Checks that `key` selects AES-128, AES-192 or AES-256 (memberlist's `ValidateKey`).
pub fn validate_key(key: &[u8]) -> Result<()> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        n => Err(Error::BadKeyLength(n)),
    }
}

/// The size of the frame that seals `n` plaintext bytes (memberlist's `encryptedLength`).
///
/// Version 0 always adds 1..=16 bytes of padding (a full block when `n` is already a multiple
/// of 16); any other version adds none.
pub fn encrypted_length(vsn: u8, n: usize) -> usize {
    VERSION_SIZE + NONCE_SIZE + n + padding_len(vsn, n) + TAG_SIZE
}

/// The most encryption can add to a message (memberlist's `encryptOverhead`): 45 bytes for
/// version 0, 29 for version 1. Used to budget gossip packets.
pub fn encrypt_overhead(vsn: u8) -> usize {
    if vsn == 0 {
        VERSION_SIZE + NONCE_SIZE + BLOCK_SIZE + TAG_SIZE
    } else {
        VERSION_SIZE + NONCE_SIZE + TAG_SIZE
    }
}

/// How many PKCS7 bytes version `vsn` appends to `n` bytes.
fn padding_len(vsn: u8, n: usize) -> usize {
    if vsn == 0 {
        BLOCK_SIZE - n % BLOCK_SIZE
    } else {
        0
    }
}

/// Strips version-0 padding the way memberlist's `pkcs7decode` does: the last byte says how
/// many bytes to drop, and nothing else is checked (so a final 0 drops nothing). Where Go
/// would panic (empty input, or a count above the length) this refuses instead.
fn unpad(mut plain: Vec<u8>) -> Result<Vec<u8>> {
    let Some(&last) = plain.last() else {
        return Err(Error::Truncated {
            what: "PKCS7 padding",
            needed: 1,
        });
    };
    let pad = usize::from(last);
    if pad > plain.len() {
        return Err(Error::Truncated {
            what: "PKCS7 padding",
            needed: pad - plain.len(),
        });
    }
    plain.truncate(plain.len() - pad);
    Ok(plain)
}

/// A key's expanded AES-GCM state, built once so that decrypting does not redo the key
/// schedule for every key on every packet.
#[derive(Clone)]
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<AesGcm<Aes192, U12>>),
    Aes256(Box<Aes256Gcm>),
}

impl Cipher {
    fn new(key: &[u8]) -> Result<Self> {
        let bad = |_| Error::BadKeyLength(key.len());
        Ok(match key.len() {
            16 => Self::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad)?)),
            24 => Self::Aes192(Box::new(
                AesGcm::<Aes192, U12>::new_from_slice(key).map_err(bad)?,
            )),
            32 => Self::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?)),
            n => return Err(Error::BadKeyLength(n)),
        })
    }

    /// Encrypts `buf` in place and returns the tag.
    fn seal(&self, nonce: &Nonce<U12>, aad: &[u8], buf: &mut [u8]) -> Tag {
        let sealed = match self {
            Self::Aes128(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Self::Aes192(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Self::Aes256(c) => c.encrypt_in_place_detached(nonce, aad, buf),
        };
        // GCM only refuses plaintexts over 64 GiB; memberlist messages are at most 20 MiB.
        sealed.expect("AES-GCM plaintext over 64 GiB")
    }

    /// Decrypts `buf` in place; on failure `buf` holds garbage.
    fn open(&self, nonce: &Nonce<U12>, aad: &[u8], buf: &mut [u8], tag: &Tag) -> bool {
        match self {
            Self::Aes128(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Self::Aes192(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Self::Aes256(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
        }
        .is_ok()
    }
}

/// An ordered set of keys; the first is the primary. Never empty: "no encryption" is the
/// absence of a keyring (memberlist's empty `Keyring`).
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
    /// `ciphers[i]` is the expanded form of `keys[i]`.
    ciphers: Vec<Cipher>,
}

impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}

impl Eq for Keyring {}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

impl Keyring {
    /// A keyring whose primary key is `primary`, plus `secondaries` in order; duplicates
    /// (including a copy of the primary) are dropped, as memberlist's `NewKeyring` does.
    pub fn new(primary: Vec<u8>, secondaries: Vec<Vec<u8>>) -> Result<Self> {
        let mut ring = Self {
            ciphers: vec![Cipher::new(&primary)?],
            keys: vec![primary],
        };
        for key in secondaries {
            ring.add_key(&key)?;
        }
        Ok(ring)
    }

    /// All keys, primary first.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The key used for encryption.
    pub fn primary(&self) -> &[u8] {
        &self.keys[0]
    }

    /// Whether `key` is installed.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.keys.iter().position(|k| k.as_slice() == key)
    }

    /// Installs `key` for decryption, after the existing keys. Installing a key that is
    /// already present does nothing (memberlist's `AddKey`).
    pub fn add_key(&mut self, key: &[u8]) -> Result<()> {
        validate_key(key)?;
        if !self.contains(key) {
            self.ciphers.push(Cipher::new(key)?);
            self.keys.push(key.to_vec());
        }
        Ok(())
    }

    /// Makes the installed `key` the primary; the other keys keep their relative order
    /// (memberlist's `UseKey`, so the old primary becomes the first secondary only if it was
    /// first). Fails with [`Error::KeyNotInstalled`] if `key` is not in the ring.
    pub fn use_key(&mut self, key: &[u8]) -> Result<()> {
        let i = self.position(key).ok_or(Error::KeyNotInstalled)?;
        let k = self.keys.remove(i);
        let c = self.ciphers.remove(i);
        self.keys.insert(0, k);
        self.ciphers.insert(0, c);
        Ok(())
    }

    /// Uninstalls `key`. The primary cannot be removed ([`Error::RemovePrimaryKey`]);
    /// removing a key that is not installed succeeds and does nothing, as in memberlist.
    pub fn remove_key(&mut self, key: &[u8]) -> Result<()> {
        match self.position(key) {
            Some(0) => Err(Error::RemovePrimaryKey),
            Some(i) => {
                self.keys.remove(i);
                self.ciphers.remove(i);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Seals `plaintext` with the primary key: `[vsn][12-byte nonce][ciphertext][16-byte tag]`.
    ///
    /// `vsn` 0 pads (memberlist protocol 1), 1 does not (protocols 2 and up). `aad` is the GCM
    /// additional data: empty for memberlist v0.2.2 packets, the 5-byte stream header
    /// (`[encryptMsg][u32 BE length]`) for streams. `rng` must be cryptographically secure in
    /// production: a repeated nonce under one key breaks GCM.
    pub fn encrypt(&self, vsn: u8, plaintext: &[u8], aad: &[u8], rng: &mut dyn RngCore) -> Vec<u8> {
        let mut out = Vec::with_capacity(encrypted_length(vsn, plaintext.len()));
        self.encrypt_into(vsn, plaintext, aad, rng, &mut out);
        out
    }

    /// Like [`Keyring::encrypt`], appending the frame to `out` (after a stream header, say).
    ///
    /// Versions above 1 are sealed without padding, as memberlist's `encryptPayload` would,
    /// but nothing opens them; callers should only pass 0 or 1.
    pub fn encrypt_into(
        &self,
        vsn: u8,
        plaintext: &[u8],
        aad: &[u8],
        rng: &mut dyn RngCore,
        out: &mut Vec<u8>,
    ) {
        debug_assert!(vsn <= MAX_ENCRYPTION_VERSION, "encryption version {vsn}");
        let mut nonce = Nonce::<U12>::default();
        rng.fill_bytes(&mut nonce);
        out.reserve(encrypted_length(vsn, plaintext.len()));
        out.push(vsn);
        out.extend_from_slice(&nonce);
        let body = out.len();
        out.extend_from_slice(plaintext);
        let pad = padding_len(vsn, plaintext.len());
        // `pad` is 1..=16, so it fits the byte.
        out.resize(out.len() + pad, pad as u8);
        let tag = self.ciphers[0].seal(&nonce, aad, &mut out[body..]);
        out.extend_from_slice(&tag);
    }

    /// Opens a frame made by [`Keyring::encrypt`], trying every key, primary first, and
    /// returns the plaintext (without padding for version 0).
    ///
    /// Errors: [`Error::Truncated`] for a frame shorter than memberlist accepts (29 bytes for
    /// version 1, 45 for version 0) or bad version-0 padding, [`Error::UnknownEncryptionVersion`]
    /// for a version byte above 1, [`Error::DecryptFailed`] when no key authenticates it.
    pub fn decrypt(&self, frame: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let Some(&vsn) = frame.first() else {
            return Err(Error::Truncated {
                what: "encrypted frame",
                needed: 1,
            });
        };
        if vsn > MAX_ENCRYPTION_VERSION {
            return Err(Error::UnknownEncryptionVersion(vsn));
        }
        let min = encrypted_length(vsn, 0);
        if frame.len() < min {
            return Err(Error::Truncated {
                what: "encrypted frame",
                needed: min - frame.len(),
            });
        }
        let nonce = Nonce::<U12>::from_slice(&frame[VERSION_SIZE..VERSION_SIZE + NONCE_SIZE]);
        let (ciphertext, tag) = frame[VERSION_SIZE + NONCE_SIZE..]
            .split_at(frame.len() - VERSION_SIZE - NONCE_SIZE - TAG_SIZE);
        let tag = Tag::from_slice(tag);
        let mut buf = ciphertext.to_vec();
        for (i, cipher) in self.ciphers.iter().enumerate() {
            if i > 0 {
                // A failed attempt leaves the buffer decrypted with the wrong keystream.
                buf.copy_from_slice(ciphertext);
            }
            if cipher.open(nonce, aad, &mut buf, tag) {
                return if vsn == 0 { unpad(buf) } else { Ok(buf) };
            }
        }
        Err(Error::DecryptFailed {
            keys: self.keys.len(),
        })
    }

    /// A keyring from base64 keys (Serf's `-encrypt` value or keyring file entries), the first
    /// being the primary. An empty list is refused, as Serf refuses an empty keyring file.
    pub fn from_base64_keys<S: AsRef<str>>(keys: &[S]) -> Result<Self> {
        let mut decoded = keys
            .iter()
            .map(|k| decode_base64_key(k.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if decoded.is_empty() {
            return Err(Error::KeyFile("keyring contains no keys".into()));
        }
        let primary = decoded.remove(0);
        Self::new(primary, decoded)
    }

    /// All keys in standard padded base64, primary first.
    pub fn to_base64_keys(&self) -> Vec<String> {
        self.keys.iter().map(|k| encode_base64_key(k)).collect()
    }
}

/// Go's `base64.StdEncoding`: standard alphabet, padding required, non-zero trailing bits
/// accepted (Go's decoder is not strict about them).
const GO_STD_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Decodes one base64 key as Serf does (Go's `base64.StdEncoding`, which skips CR and LF)
/// and checks its length.
pub fn decode_base64_key(text: &str) -> Result<Vec<u8>> {
    let cleaned: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let key = GO_STD_BASE64
        .decode(cleaned)
        .map_err(|e| Error::KeyFile(format!("key is not valid base64: {e}")))?;
    validate_key(&key)?;
    Ok(key)
}

/// Encodes a key in standard padded base64, as Serf writes it.
pub fn encode_base64_key(key: &[u8]) -> String {
    GO_STD_BASE64.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::RngCore;
    use rand::SeedableRng;

    fn key(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    fn ring(len: usize) -> Keyring {
        Keyring::new(key(len, 1), vec![]).unwrap()
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn keyring_round_trip_every_key_size_and_version() {
        for len in [16, 24, 32] {
            for vsn in [0, 1] {
                let kr = ring(len);
                let msg = b"this is a plain text message";
                let frame = kr.encrypt(vsn, msg, b"random data", &mut rng());
                assert_eq!(frame.len(), encrypted_length(vsn, msg.len()));
                assert_eq!(frame[0], vsn);
                assert_eq!(kr.decrypt(&frame, b"random data").unwrap(), msg);
            }
        }
    }

    #[test]
    fn keyring_nist_gcm_known_answer() {
        // McGrew & Viega GCM spec, test case 2: zero key, zero IV, one zero block.
        struct Zero;
        impl RngCore for Zero {
            fn next_u32(&mut self) -> u32 {
                0
            }
            fn next_u64(&mut self) -> u64 {
                0
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                dest.fill(0);
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand::Error> {
                dest.fill(0);
                Ok(())
            }
        }
        let kr = Keyring::new(vec![0; 16], vec![]).unwrap();
        let frame = kr.encrypt(1, &[0; 16], &[], &mut Zero);
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "01",
                "000000000000000000000000",
                "0388dace60b6a392f328c2b971b2fe78",
                "ab6e47d42cec13bdf53a67b21257bddf"
            )
        );
        assert_eq!(kr.decrypt(&frame, &[]).unwrap(), [0; 16]);
    }

    #[test]
    fn keyring_encrypt_into_appends_after_existing_bytes() {
        let kr = ring(32);
        let header = [7u8, 0, 0, 0, 45];
        let mut out = header.to_vec();
        kr.encrypt_into(1, b"state", &header, &mut rng(), &mut out);
        assert_eq!(&out[..5], &header);
        assert_eq!(out.len(), 5 + encrypted_length(1, 5));
        assert_eq!(kr.decrypt(&out[5..], &header).unwrap(), b"state");
    }

    #[test]
    fn keyring_nonces_come_from_the_rng() {
        let kr = ring(16);
        let a = kr.encrypt(1, b"x", &[], &mut StdRng::seed_from_u64(1));
        let b = kr.encrypt(1, b"x", &[], &mut StdRng::seed_from_u64(2));
        let a2 = kr.encrypt(1, b"x", &[], &mut StdRng::seed_from_u64(1));
        assert_ne!(a[1..13], b[1..13]);
        assert_eq!(a, a2);
    }

    #[test]
    fn keyring_decrypts_with_a_secondary_key() {
        let old = Keyring::new(key(16, 9), vec![]).unwrap();
        let frame = old.encrypt(1, b"hello", &[], &mut rng());
        let new = Keyring::new(key(32, 1), vec![key(24, 5), key(16, 9)]).unwrap();
        assert_eq!(new.decrypt(&frame, &[]).unwrap(), b"hello");
        let v0 = old.encrypt(0, b"hello", &[], &mut rng());
        assert_eq!(new.decrypt(&v0, &[]).unwrap(), b"hello");
    }

    #[test]
    fn keyring_wrong_key_fails() {
        let frame = ring(16).encrypt(1, b"hello", &[], &mut rng());
        let other = Keyring::new(key(16, 2), vec![key(32, 3)]).unwrap();
        assert_eq!(
            other.decrypt(&frame, &[]),
            Err(Error::DecryptFailed { keys: 2 })
        );
    }

    #[test]
    fn keyring_tampering_anywhere_but_the_version_fails() {
        for vsn in [0, 1] {
            let kr = ring(16);
            let frame = kr.encrypt(vsn, b"some message", b"aad", &mut rng());
            for i in 1..frame.len() {
                let mut bad = frame.clone();
                bad[i] ^= 0x01;
                assert_eq!(
                    kr.decrypt(&bad, b"aad"),
                    Err(Error::DecryptFailed { keys: 1 }),
                    "byte {i}"
                );
            }
            assert!(kr.decrypt(&frame, b"aae").is_err());
            assert!(kr.decrypt(&frame, b"").is_err());
            assert!(kr.decrypt(&frame, b"aad ").is_err());
            assert!(kr.decrypt(&frame[..frame.len() - 1], b"aad").is_err());
        }
    }

    #[test]
    fn keyring_empty_and_missing_aad_are_the_same() {
        // Go passes nil for packets; GCM treats nil and empty alike.
        let kr = ring(16);
        let frame = kr.encrypt(1, b"m", b"", &mut rng());
        assert_eq!(kr.decrypt(&frame, &[]).unwrap(), b"m");
    }

    #[test]
    fn keyring_truncated_frames_are_errors() {
        let kr = ring(16);
        for vsn in [0u8, 1] {
            let frame = kr.encrypt(vsn, &[], &[], &mut rng());
            let min = encrypted_length(vsn, 0);
            assert_eq!(frame.len(), min);
            for n in 0..min {
                let err = kr.decrypt(&frame[..n], &[]).unwrap_err();
                assert!(matches!(err, Error::Truncated { .. }), "vsn {vsn} len {n}");
            }
            // Frames of memberlist's minimum length, but full of junk, are only undecryptable.
            for n in 0..30 {
                let mut junk = vec![0xAA; n];
                if let Some(b) = junk.first_mut() {
                    *b = vsn;
                }
                assert!(kr.decrypt(&junk, &[]).is_err());
            }
        }
        assert_eq!(
            kr.decrypt(&[], &[]),
            Err(Error::Truncated {
                what: "encrypted frame",
                needed: 1
            })
        );
        // memberlist requires 45 bytes for a version-0 frame, even though 29 could hold one.
        assert_eq!(
            kr.decrypt(&[0; 29], &[]),
            Err(Error::Truncated {
                what: "encrypted frame",
                needed: 16
            })
        );
    }

    #[test]
    fn keyring_unknown_versions_are_refused() {
        let kr = ring(16);
        for vsn in 2..=255u8 {
            let mut frame = vec![0; 64];
            frame[0] = vsn;
            assert_eq!(
                kr.decrypt(&frame, &[]),
                Err(Error::UnknownEncryptionVersion(vsn))
            );
            // The version is checked before the length, as in memberlist.
            assert_eq!(
                kr.decrypt(&[vsn], &[]),
                Err(Error::UnknownEncryptionVersion(vsn))
            );
        }
    }

    #[test]
    fn keyring_v0_pads_to_the_block_size_and_unpads() {
        let kr = ring(24);
        for n in 0..=64usize {
            let msg: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let frame = kr.encrypt(0, &msg, &[], &mut rng());
            let pad = 16 - n % 16;
            assert_eq!(frame.len(), 1 + 12 + n + pad + 16, "n {n}");
            assert_eq!((frame.len() - 29) % 16, 0);
            assert_eq!(kr.decrypt(&frame, &[]).unwrap(), msg);
            // What was sealed: the message and `pad` copies of `pad`, a whole block when the
            // message is already a multiple of 16.
            let mut padded = frame.clone();
            padded[0] = 1;
            let mut expect = msg.clone();
            expect.resize(n + pad, pad as u8);
            assert_eq!(kr.decrypt(&padded, &[]).unwrap(), expect);
        }
        assert_eq!(encrypted_length(0, 0), 45);
        assert_eq!(encrypted_length(0, 15), 45);
        assert_eq!(encrypted_length(0, 16), 61);
        assert_eq!(encrypted_length(1, 0), 29);
        assert_eq!(encrypted_length(1, 28), 57);
        assert_eq!(encrypt_overhead(0), 45);
        assert_eq!(encrypt_overhead(1), 29);
    }

    #[test]
    fn keyring_v0_unpadding_matches_go_and_never_panics() {
        // The version byte is not authenticated, so a version-1 frame relabelled 0 is opened
        // and "unpadded" by whatever its last byte says, exactly as memberlist would.
        let kr = ring(16);
        let relabel = |msg: &[u8]| {
            let mut f = kr.encrypt(1, msg, &[], &mut rng());
            f[0] = 0;
            kr.decrypt(&f, &[])
        };
        let mut msg = vec![b'a'; 16];
        msg[15] = 0;
        assert_eq!(relabel(&msg).unwrap(), msg, "a final 0 drops nothing");
        msg[15] = 16;
        assert_eq!(relabel(&msg).unwrap(), b"");
        msg[15] = 3;
        assert_eq!(relabel(&msg).unwrap(), vec![b'a'; 13]);
        let mut long = vec![b'a'; 40];
        long[39] = 30;
        assert_eq!(
            relabel(&long).unwrap(),
            vec![b'a'; 10],
            "counts above 16 obeyed"
        );
        msg[15] = 17;
        assert_eq!(
            relabel(&msg),
            Err(Error::Truncated {
                what: "PKCS7 padding",
                needed: 1
            })
        );
        msg[15] = 255;
        assert!(relabel(&msg).is_err());
        assert!(unpad(Vec::new()).is_err());
    }

    #[test]
    fn keyring_new_validates_dedupes_and_orders() {
        for len in [0, 1, 15, 17, 23, 25, 31, 33, 64] {
            assert_eq!(
                Keyring::new(vec![0; len], vec![]),
                Err(Error::BadKeyLength(len))
            );
            assert_eq!(
                Keyring::new(key(16, 0), vec![vec![0; len]]),
                Err(Error::BadKeyLength(len))
            );
        }
        let (a, b, c) = (key(16, 0), key(24, 1), key(32, 2));
        let kr = Keyring::new(b.clone(), vec![a.clone(), b.clone(), c.clone(), a.clone()]).unwrap();
        assert_eq!(kr.keys(), [b.clone(), a, c]);
        assert_eq!(kr.primary(), b.as_slice());
    }

    #[test]
    fn keyring_add_use_remove_follow_memberlist() {
        let (a, b, c) = (key(16, 0), key(16, 1), key(16, 2));
        let mut kr = Keyring::new(a.clone(), vec![]).unwrap();
        assert_eq!(kr.use_key(&b), Err(Error::KeyNotInstalled));
        kr.add_key(&b).unwrap();
        kr.add_key(&b).unwrap();
        kr.add_key(&c).unwrap();
        assert_eq!(kr.keys(), [a.clone(), b.clone(), c.clone()]);
        assert_eq!(kr.add_key(&[1; 20]), Err(Error::BadKeyLength(20)));

        // The new primary moves to the front; the rest keep their order.
        kr.use_key(&c).unwrap();
        assert_eq!(kr.keys(), [c.clone(), a.clone(), b.clone()]);
        kr.use_key(&c).unwrap();
        assert_eq!(kr.keys(), [c.clone(), a.clone(), b.clone()]);

        assert_eq!(kr.remove_key(&c), Err(Error::RemovePrimaryKey));
        kr.remove_key(&a).unwrap();
        assert_eq!(kr.keys(), [c.clone(), b.clone()]);
        // Removing a key that is not installed is a quiet success.
        kr.remove_key(&a).unwrap();
        kr.remove_key(&[9; 3]).unwrap();
        assert_eq!(kr.keys(), [c.clone(), b.clone()]);
        assert!(kr.contains(&b) && !kr.contains(&a));

        // The ciphers follow the keys: encrypt with the new primary, decrypt with the rest.
        let frame = kr.encrypt(1, b"m", &[], &mut rng());
        assert!(Keyring::new(c.clone(), vec![])
            .unwrap()
            .decrypt(&frame, &[])
            .is_ok());
        assert!(Keyring::new(b.clone(), vec![])
            .unwrap()
            .decrypt(&frame, &[])
            .is_err());
        let from_b = Keyring::new(b, vec![])
            .unwrap()
            .encrypt(1, b"n", &[], &mut rng());
        assert_eq!(kr.decrypt(&from_b, &[]).unwrap(), b"n");
    }

    #[test]
    fn keyring_debug_hides_keys() {
        let kr = Keyring::new(vec![0xAB; 16], vec![vec![0xCD; 32]]).unwrap();
        let s = format!("{kr:?}");
        assert_eq!(s, "Keyring(2 keys)");
    }

    #[test]
    fn keyring_base64_keys_round_trip() {
        // `serf keygen` style key.
        let b64 = "5K9OtfP7efFrNKe5WCQvXvnaXJ5cWP0SvXiwe0kkjM4=";
        let kr =
            Keyring::from_base64_keys(&[b64.to_string(), encode_base64_key(&[7; 16])]).unwrap();
        assert_eq!(kr.primary().len(), 32);
        assert_eq!(kr.keys()[1], [7; 16]);
        assert_eq!(kr.to_base64_keys(), [b64, "BwcHBwcHBwcHBwcHBwcHBw=="]);
        assert_eq!(
            Keyring::from_base64_keys::<String>(&[]),
            Err(Error::KeyFile("keyring contains no keys".into()))
        );
        assert!(matches!(
            decode_base64_key("not base64!"),
            Err(Error::KeyFile(_))
        ));
        assert!(matches!(
            decode_base64_key("BwcHBwcHBwcHBwcHBwcHBw"),
            Err(Error::KeyFile(_))
        ));
        assert_eq!(decode_base64_key("AAAA"), Err(Error::BadKeyLength(3)));
        assert_eq!(
            decode_base64_key("BwcHBwcHBwcH\r\nBwcHBwcHBw==").unwrap(),
            [7; 16]
        );
        // Go's decoder does not insist on zero trailing bits.
        assert_eq!(
            decode_base64_key("BwcHBwcHBwcHBwcHBwcHBx==").unwrap(),
            [7; 16]
        );
    }

    fn any_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 16),
            proptest::collection::vec(any::<u8>(), 24),
            proptest::collection::vec(any::<u8>(), 32),
        ]
    }

    proptest! {
        #[test]
        fn keyring_prop_round_trip(
            primary in any_key(),
            secondaries in proptest::collection::vec(any_key(), 0..3),
            vsn in 0u8..=1,
            msg in proptest::collection::vec(any::<u8>(), 0..300),
            aad in proptest::collection::vec(any::<u8>(), 0..40),
            seed in any::<u64>(),
        ) {
            let sender = Keyring::new(primary.clone(), vec![]).unwrap();
            let frame = sender.encrypt(vsn, &msg, &aad, &mut StdRng::seed_from_u64(seed));
            prop_assert_eq!(frame.len(), encrypted_length(vsn, msg.len()));
            // The receiver holds the sender's key somewhere after its own.
            let mut receiver = Keyring::new(key(32, 200), secondaries).unwrap();
            receiver.add_key(&primary).unwrap();
            prop_assert_eq!(receiver.decrypt(&frame, &aad).unwrap(), msg);
            let mut other_aad = aad.clone();
            other_aad.push(0);
            prop_assert!(receiver.decrypt(&frame, &other_aad).is_err());
        }

        #[test]
        fn keyring_prop_decrypt_never_panics(
            frame in proptest::collection::vec(any::<u8>(), 0..100),
            aad in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let _ = ring(16).decrypt(&frame, &aad);
        }
    }
}
