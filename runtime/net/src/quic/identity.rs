//! Certificates and keys: a node's [`Identity`] (self-signed and generated at start, optionally
//! kept in a file, or loaded from operator-supplied PEM files) and the [`Fingerprint`] peers
//! pin it by (sha256 of the certificate's DER, written as 43 characters of unpadded base64url).

use super::QuicError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The length of a fingerprint's text form.
pub const FINGERPRINT_TEXT_LEN: usize = 43;

/// sha256 of a certificate's DER encoding: what gossip carries so peers can pin a node's
/// self-signed certificate without a CA.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> Self {
        Self(Sha256::digest(cert_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = QuicError;

    fn from_str(s: &str) -> Result<Self, QuicError> {
        let bad = |why: &str| QuicError::BadFingerprint(format!("{s:?}: {why}"));
        if s.len() != FINGERPRINT_TEXT_LEN {
            return Err(bad(&format!(
                "expected {FINGERPRINT_TEXT_LEN} characters of base64url, got {}",
                s.len()
            )));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| bad(&format!("not base64url ({e})")))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("does not decode to 32 bytes"))?;
        Ok(Self(arr))
    }
}

/// A node's certificate chain and private key, as the TLS layer presents them.
#[derive(Debug)]
pub struct Identity {
    /// The node's certificate first, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256) for `name` (the node name, used as the
    /// subject alternative name; pinning does not depend on it).
    pub fn generate(name: &str) -> Result<Self, QuicError> {
        let san = if name.is_empty() || !name.is_ascii() {
            "hearsay".to_owned()
        } else {
            name.to_owned()
        };
        let certified = rcgen::generate_simple_self_signed(vec![san])
            .map_err(|e| QuicError::Certificate(format!("generating a certificate: {e}")))?;
        let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        Ok(Self {
            chain: vec![certified.cert.der().clone()],
            key,
        })
    }

    /// Loads the identity kept at `path` (one PEM file holding the certificate and its key),
    /// or generates one and writes it there (mode 0600 on Unix), so the fingerprint peers have
    /// learned survives a restart.
    pub fn load_or_generate(path: &Path, name: &str) -> Result<Self, QuicError> {
        if path.exists() {
            let pem = read(path)?;
            return Self::from_pem(&pem, &pem, path);
        }
        let id = Self::generate(name)?;
        let mut pem = String::new();
        for cert in &id.chain {
            pem.push_str(&pem_block("CERTIFICATE", cert));
        }
        pem.push_str(&pem_block("PRIVATE KEY", id.key.secret_der()));
        write_private(path, pem.as_bytes())?;
        Ok(id)
    }

    /// Loads an operator-supplied certificate chain and key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, QuicError> {
        Self::from_pem(&read(cert)?, &read(key)?, cert)
    }

    fn from_pem(cert_pem: &[u8], key_pem: &[u8], path: &Path) -> Result<Self, QuicError> {
        let chain = certs_from_pem(cert_pem, path)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            QuicError::Certificate(format!("no usable private key in {}: {e}", path.display()))
        })?;
        Ok(Self { chain, key })
    }

    /// The fingerprint of this identity's own certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        // An empty chain (only constructible by hand; `bind` refuses it) hashes as empty.
        Fingerprint::of(self.chain.first().map_or(&[][..], |c| c.as_ref()))
    }
}

/// Every certificate in a PEM buffer (at least one).
pub(crate) fn certs_from_pem(
    pem: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, QuicError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QuicError::Certificate(format!("bad PEM in {}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(QuicError::Certificate(format!(
            "no CERTIFICATE block in {}",
            path.display()
        )));
    }
    Ok(chain)
}

/// Reads a file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, QuicError> {
    std::fs::read(path).map_err(|source| QuicError::File {
        path: path.display().to_string(),
        source,
    })
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), QuicError> {
    use std::io::Write as _;
    let err = |source| QuicError::File {
        path: path.display().to_string(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(data).map_err(err)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_text_round_trips_and_rejects_garbage() {
        let fp = Fingerprint::of(b"certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), FINGERPRINT_TEXT_LEN);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        let e = "short".parse::<Fingerprint>().unwrap_err().to_string();
        assert!(e.contains("expected 43 characters"), "{e}");
        let e = "!"
            .repeat(43)
            .parse::<Fingerprint>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("not base64url"), "{e}");
    }

    #[test]
    fn persisted_identity_keeps_its_fingerprint() {
        let dir = std::env::temp_dir().join(format!("hearsay-quic-id-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let a = Identity::load_or_generate(&dir, "node-a").unwrap();
        let b = Identity::load_or_generate(&dir, "node-a").unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.key.secret_der(), b.key.secret_der());
        std::fs::remove_file(&dir).unwrap();
    }
}
