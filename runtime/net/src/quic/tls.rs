//! rustls configuration for both security modes: the certificate verifiers (pinned
//! fingerprints, or a CA plus the pinned fingerprint), and the quinn client and server configs
//! built from them. TLS 1.3 only (QUIC requires it), ring as the crypto provider.

use super::{Fingerprint, Identity, QuicError};
use crate::limit::WarnLimit;
use hearsay_swim::loglimit::Source;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{OtherError, SignatureScheme};
use std::fmt;
use std::sync::{Arc, LazyLock};

/// The ALPN protocol both sides require, so nothing else speaking QUIC is mistaken for us.
pub const ALPN: &[u8] = b"hearsay-resp/1";
/// The TLS server name every client sends. Peers are identified by fingerprint, not by name.
pub const SERVER_NAME: &str = "hearsay";

/// Decides whether an authenticated client certificate belongs to a known member: called with
/// the certificate's fingerprint during the handshake; `false` refuses the connection.
pub type PeerFilter = Arc<dyn Fn(&Fingerprint) -> bool + Send + Sync>;

/// The ring provider this module uses everywhere.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a certificate was refused. rustls shows it with `Debug` (also to the peer, in the
/// close reason), so `Debug` is the plain message.
struct Refusal(String);

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// Rate limit of [`refuse`]'s warnings (a verifier is not told the peer's address, so one
/// key for every refusal in the process).
static REFUSALS: LazyLock<WarnLimit> = LazyLock::new(|| WarnLimit::new("QUIC"));

fn refuse(msg: String) -> rustls::Error {
    if REFUSALS.allow(Source::Any, "peer-refused") {
        tracing::warn!("QUIC: refused a peer: {msg}");
    }
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(msg)))))
}

/// Client side: accepts the server only if its certificate has the expected fingerprint (and,
/// in CA mode, also chains to the CA), and checks the handshake signature with its key.
pub struct PinnedServerVerifier {
    expected: Fingerprint,
    roots: Option<Arc<RootCertStore>>,
    algs: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PinnedServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedServerVerifier")
            .field("expected", &self.expected)
            .field("ca", &self.roots.is_some())
            .finish()
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity);
        if let Some(roots) = &self.roots {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &parsed,
                roots,
                intermediates,
                now,
                self.algs.all,
            )
            .map_err(|e| {
                refuse(format!(
                    "server certificate {got} is not signed by the CA: {e}"
                ))
            })?;
        }
        if got != self.expected {
            return Err(refuse(format!(
                "server certificate fingerprint {got} does not match the pinned fingerprint {}",
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Server side: requires a client certificate, checks its handshake signature (proof that the
/// client holds the key), in CA mode its chain to the CA, and asks the [`PeerFilter`] whether
/// its fingerprint belongs to a known member.
pub struct MemberClientVerifier {
    ca: Option<Arc<dyn ClientCertVerifier>>,
    filter: Option<PeerFilter>,
    algs: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for MemberClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberClientVerifier")
            .field("ca", &self.ca.is_some())
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl ClientCertVerifier for MemberClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.ca {
            Some(ca) => ca.root_hint_subjects(),
            None => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity);
        if let Some(ca) = &self.ca {
            ca.verify_client_cert(end_entity, intermediates, now)
                .map_err(|e| {
                    refuse(format!(
                        "client certificate {got} is not signed by the CA: {e}"
                    ))
                })?;
        }
        if let Some(filter) = &self.filter {
            if !filter(&got) {
                return Err(refuse(format!(
                    "client certificate {got} does not belong to a known member"
                )));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A root store holding the operator's CA certificates.
pub fn root_store(ca: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, QuicError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots
            .add(cert.clone())
            .map_err(|e| QuicError::Certificate(format!("unusable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn tls_err(what: &str) -> impl Fn(rustls::Error) -> QuicError + '_ {
    move |e| QuicError::Certificate(format!("{what}: {e}"))
}

/// A quinn client config that expects `expected` at the other end. `identity` is the client
/// certificate to present (`None` presents none, which every hearsay server refuses: only
/// useful to test exactly that). `roots` adds CA verification.
pub fn client_config(
    identity: Option<&Identity>,
    expected: Fingerprint,
    roots: Option<Arc<RootCertStore>>,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, QuicError> {
    let provider = provider();
    let verifier = PinnedServerVerifier {
        expected,
        roots,
        algs: provider.signature_verification_algorithms,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("TLS 1.3 setup"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut tls = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(tls_err("client certificate"))?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| QuicError::Certificate(format!("QUIC client TLS: {e}")))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(transport);
    Ok(cfg)
}

/// The quinn server config: presents `identity`, requires and verifies client certificates.
pub fn server_config(
    identity: &Identity,
    roots: Option<Arc<RootCertStore>>,
    filter: Option<PeerFilter>,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, QuicError> {
    let provider = provider();
    let ca = match roots {
        Some(roots) => Some(
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| QuicError::Certificate(format!("CA client verifier: {e}")))?,
        ),
        None => None,
    };
    let verifier = MemberClientVerifier {
        ca,
        filter,
        algs: provider.signature_verification_algorithms,
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err("TLS 1.3 setup"))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(tls_err("server certificate"))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| QuicError::Certificate(format!("QUIC server TLS: {e}")))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(transport);
    Ok(cfg)
}

/// The fingerprint of the certificate a connected peer presented.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Option<Fingerprint> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    certs.first().map(|c| Fingerprint::of(c))
}
