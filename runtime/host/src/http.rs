//! Outbound HTTP for handlers: `wasi:http` requests, allowed only to the origins and path
//! prefixes of the handler's `grants.http`, sent by a small client of our own.
//!
//! A request is checked against the allow-list when the guest hands it over (in
//! `outgoing-handler.handle`), before any name lookup or socket: one not on the list fails with
//! `http-request-denied`. An allowed one is sent over one fresh HTTP/1.1 connection (plain TCP,
//! or TLS verified against the system's root certificates with rustls and its ring provider).
//! The guest's own timeouts (connect, first byte, between bytes) apply when they end before the
//! event's deadline; otherwise the request simply runs until the deadline, where the event ends
//! (a [`crate::TrapKind::Deadline`] trap) and takes the request with it. The response body is
//! cut at [`HTTP_BODY_CAP`] bytes: a longer one is an error to the guest.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
};

/// The most response body bytes a handler may receive per request (1 MiB). A `Content-Length`
/// above it fails the request (`http-response-body-size`); a body that grows past it without one
/// fails the read that passes the cap (a stream error saying so). The guest never gets more.
pub(crate) const HTTP_BODY_CAP: usize = 1 << 20;

/// Requests one event may send (denied ones included); more fail with `connection-limit-reached`.
/// Each request is one connection: this bounds what one event can make of an allowed origin.
pub(crate) const HTTP_REQUESTS_PER_EVENT: u32 = 64;

/// How long past the event's deadline a request's own bound lies. The event ends at its deadline
/// and drops its requests there; this bound only ends a connection something else still holds.
const PAST_DEADLINE: Duration = Duration::from_secs(1);

/// One entry of a handler's `grants.http`: an origin (scheme, host, port) and a path prefix a handler may
/// send HTTP requests to, e.g. `http://127.0.0.1:8500` or `https://hooks.example.com/ci/`.
///
/// Parsed from text with [`FromStr`] and displayed back as text. The host is compared without
/// regard to case; the port is the one written, or the scheme's (80, 443); the path prefix
/// (default `/`) matches whole segments: `/ci` and `/ci/` both allow `/ci` and `/ci/x`, not
/// `/cix`. Requests whose path has `.` or `..` segments, or percent-encodes a dot, slash,
/// backslash, percent sign or NUL, are refused whatever the list says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpAllow {
    https: bool,
    /// Lower case; an IPv6 address in brackets, in its canonical form.
    host: String,
    port: u16,
    /// As written (starts with `/`).
    prefix: String,
}

/// Why an `http` grant could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid http grant {input:?}: {reason}")]
pub struct HttpAllowError {
    input: String,
    reason: String,
}

impl HttpAllow {
    /// `"http"` or `"https"`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The host: a lower-case name, an IPv4 address, or an IPv6 address in brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path prefix, starting with `/`.
    pub fn path_prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this entry allows a request to `scheme://authority` with `path_and_query` (the
    /// request target: path, then an optional `?query`, which is not checked). The authority may
    /// carry a port; without one the scheme's default is meant. An authority with user info, and
    /// a path that [`path_is_clean`] refuses, are never allowed.
    pub fn allows(&self, scheme: &str, authority: &str, path_and_query: &str) -> bool {
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return false;
        };
        if https != self.https {
            return false;
        }
        let Ok((host, port)) = parse_authority(authority, default_port(https)) else {
            return false;
        };
        if host != self.host || port != self.port {
            return false;
        }
        let path = request_path(path_and_query);
        path_is_clean(path) && under_prefix(path, &self.prefix)
    }
}

/// Whether any entry of `allow` allows the request (see [`HttpAllow::allows`]).
pub(crate) fn allowed(
    allow: &[HttpAllow],
    scheme: &str,
    authority: &str,
    path_and_query: &str,
) -> bool {
    allow
        .iter()
        .any(|a| a.allows(scheme, authority, path_and_query))
}

fn default_port(https: bool) -> u16 {
    if https {
        443
    } else {
        80
    }
}

/// The path of a request target (`""` is `/`), without its query or fragment.
fn request_path(path_and_query: &str) -> &str {
    let end = path_and_query
        .find(['?', '#'])
        .unwrap_or(path_and_query.len());
    match &path_and_query[..end] {
        "" => "/",
        path => path,
    }
}

/// Whether `path` is under `prefix` on segment boundaries.
fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Whether a request path is safe to compare as text: it starts with `/`, has no `.` or `..`
/// segment (also not as `..;params`, which some servers read as `..`), no backslash, and no
/// percent-encoded dot, slash, backslash, percent sign or NUL (the forms a server may decode into
/// a traversal after the check), and every `%` starts a valid escape.
pub(crate) fn path_is_clean(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') {
        return false;
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).and_then(|&c| (c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return false;
            };
            if matches!(hi * 16 + lo, 0x00 | 0x25 | 0x2e | 0x2f | 0x5c) {
                return false;
            }
        }
    }
    path.split('/').all(|segment| {
        let name = segment.split(';').next().unwrap_or("");
        name != "." && name != ".."
    })
}

/// Parses an authority (`host`, `host:port`, `[v6]:port`) into the normalised host and the port.
fn parse_authority(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err("user info (user@host) is not allowed".into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address must end with ']'")?;
        let addr =
            Ipv6Addr::from_str(inside).map_err(|_| format!("{inside:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("only a port may follow an IPv6 address")?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (normal_host(host)?, Some(port)),
            None => (normal_host(authority)?, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(format!("port {p} is out of range")),
                Ok(n) => n,
            }
        }
        Some(p) => return Err(format!("port {p:?} is not a number from 1 to 65535")),
    };
    Ok((host, port))
}

/// A host name or IPv4 address, lower case; refuses wildcards and anything not a plain name.
fn normal_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.contains('*') {
        return Err("wildcards are not allowed: name each host".into());
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // All digits and dots: an IPv4 address in its usual form, not a shorthand like 127.1.
        return Ipv4Addr::from_str(host)
            .map(|a| a.to_string())
            .map_err(|_| format!("{host:?} is not an IPv4 address"));
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.len() > 253 || !host.split('.').all(valid_label) {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(host.to_ascii_lowercase())
}

impl FromStr for HttpAllow {
    type Err = HttpAllowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| HttpAllowError {
            input: s.into(),
            reason,
        };
        if s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("spaces and control characters are not allowed".into()));
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port][/path]".into()))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad(format!("scheme {scheme:?} is not http or https"))),
        };
        if rest.contains(['?', '#']) {
            return Err(bad("a query or fragment is not allowed".into()));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let (host, port) = parse_authority(authority, default_port(https)).map_err(bad)?;
        if !path_is_clean(path) {
            return Err(bad(
                "the path may not have . or .. segments, backslashes, or percent-encoded dots, slashes, backslashes, percent signs or NULs".into(),
            ));
        }
        Ok(HttpAllow {
            https,
            host,
            port,
            prefix: path.into(),
        })
    }
}

impl fmt::Display for HttpAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.host)?;
        if self.port != default_port(self.https) {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.prefix)
    }
}

/// The future of a response, as `wasi:http`'s hooks return it: the response (its body read
/// through the cap), and the connection's remaining work, which the body keeps alive.
pub(crate) type SendFuture =
    Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), Error>> + Send>;
/// The connection's work after the response head: it ends when the body has been read (or the
/// guest drops it, which aborts it).
pub(crate) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// The `wasi:http` state of one invocation: the context, and the policy every outgoing request
/// of the handler goes through.
pub(crate) struct OutboundHttp {
    ctx: WasiHttpCtx,
    policy: Policy,
}

/// What decides and sends a handler's requests (`wasi:http`'s hooks).
struct Policy {
    handler: Arc<str>,
    /// The handler's `grants.http`.
    allow: Arc<[HttpAllow]>,
    deadline: Instant,
    requests: u32,
}

impl OutboundHttp {
    /// The state for an invocation of `handler` allowed the requests of `allow`.
    pub(crate) fn new(handler: Arc<str>, allow: Arc<[HttpAllow]>, deadline: Instant) -> Self {
        OutboundHttp {
            ctx: WasiHttpCtx::new(),
            policy: Policy {
                handler,
                allow,
                deadline,
                requests: 0,
            },
        }
    }

    /// The view `wasi:http`'s host functions work on; requests sent through it end by `deadline`
    /// (the event's, passed anew each time since the instance may be made before its event).
    pub(crate) fn view<'a>(
        &'a mut self,
        table: &'a mut ResourceTable,
        deadline: Instant,
    ) -> WasiHttpCtxView<'a> {
        self.policy.deadline = deadline;
        WasiHttpCtxView {
            ctx: &mut self.ctx,
            table,
            hooks: &mut self.policy,
        }
    }
}

impl WasiHttpHooks for Policy {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        self.requests = self.requests.saturating_add(1);
        if self.requests > HTTP_REQUESTS_PER_EVENT {
            tracing::debug!(handler = %self.handler, "http request refused: {HTTP_REQUESTS_PER_EVENT} requests per event");
            return Box::new(std::future::ready(Err(Error::ConnectionLimitReached)));
        }
        let uri = request.uri();
        if !allowed_request(&self.allow, request.method(), uri) {
            // The query may carry secrets: log the origin and path only.
            tracing::info!(
                handler = %self.handler,
                method = %request.method(),
                url = %format_args!("{}://{}{}", uri.scheme_str().unwrap_or(""), uri.authority().map_or("", |a| a.as_str()), uri.path()),
                "http request denied: not in the handler's http grants"
            );
        }
        send_request(&self.allow, self.deadline, HTTP_BODY_CAP, request, options)
    }

    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> ErrorCode {
        tracing::debug!(handler = %self.handler, error = %err, "http request failed");
        ErrorCode::HttpProtocolError
    }
}

/// Whether `allow` lets a request with `method` to `uri` through. `CONNECT` never passes: an
/// allowed proxy would tunnel it anywhere.
fn allowed_request(allow: &[HttpAllow], method: &Method, uri: &Uri) -> bool {
    if method == Method::CONNECT {
        return false;
    }
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return false;
    };
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    allowed(allow, scheme, authority.as_str(), target)
}

/// Sends `request` if `allow` lets it through, else fails with `http-request-denied` before any
/// name lookup or socket. Every wait is bounded: by the guest's `options` where they end before
/// `deadline`, otherwise a little past `deadline`, where the event has already ended and dropped
/// the request. The response body fails once it passes `body_cap` bytes.
pub(crate) fn send_request(
    allow: &[HttpAllow],
    deadline: Instant,
    body_cap: usize,
    request: Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendFuture {
    if !allowed_request(allow, request.method(), request.uri()) {
        return Box::new(std::future::ready(Err(Error::HttpRequestDenied)));
    }
    Box::new(send(
        request,
        options.unwrap_or_default(),
        deadline,
        body_cap,
        system_tls,
    ))
}

/// Anything the client connection can run over (TCP, or TLS over TCP).
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Sends an allowed request over a fresh connection; `tls` gives the client configuration for
/// `https` (called only then).
async fn send(
    mut request: Request<WasiBody>,
    options: RequestOptions,
    deadline: Instant,
    body_cap: usize,
    tls: fn() -> Result<Arc<ClientConfig>, Error>,
) -> Result<(Response<WasiBody>, IoFuture), Error> {
    let uri = request.uri();
    let https = uri.scheme_str() == Some("https");
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let (host, port) = parse_authority(authority.as_str(), default_port(https))
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let tls = if https {
        // The roots are read once, from files: off the runtime's worker threads.
        Some(
            tokio::task::spawn_blocking(tls)
                .await
                .map_err(|e| Error::InternalError(Some(e.to_string())))??,
        )
    } else {
        None
    };

    // Connection: name lookup, TCP, TLS and the HTTP/1.1 handshake.
    let connect = async {
        let stream = connect_tcp(&host, port).await?;
        let stream: Box<dyn Stream> = match tls {
            None => Box::new(stream),
            Some(config) => {
                let name = server_name(&host)?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await
                    .map_err(tls_error)?;
                Box::new(tls)
            }
        };
        hyper::client::conn::http1::Builder::new()
            .handshake::<_, WasiBody>(TokioIo::new(stream))
            .await
            .map_err(hyper_error)
    };
    let (mut sender, conn) = within(
        connect,
        options.connect_timeout,
        deadline,
        Error::ConnectionTimeout,
    )
    .await?;

    // The request line names the path only (the origin is the connection's).
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = Uri::builder()
        .path_and_query(target)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    // Send, and wait for the response head while driving the connection.
    let mut conn = Box::pin(conn);
    let mut conn_ended = false;
    let exchange = async {
        let response = sender.send_request(request);
        tokio::pin!(response);
        loop {
            tokio::select! {
                response = &mut response => break response.map_err(hyper_error),
                ended = &mut conn, if !conn_ended => {
                    conn_ended = true;
                    ended.map_err(hyper_error)?;
                }
            }
        }
    };
    let response = within(
        exchange,
        options.first_byte_timeout,
        deadline,
        Error::ConnectionReadTimeout,
    )
    .await?;
    drop(sender);

    if let Some(length) = content_length(&response) {
        if length > body_cap as u64 {
            return Err(Error::HttpResponseBodySize(Some(length)));
        }
    }
    let response = response.map(|body| {
        CappedBody::new(body, body_cap, options.between_bytes_timeout, deadline).boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        if conn_ended {
            return Ok(());
        }
        let end = (deadline + PAST_DEADLINE).into();
        match tokio::time::timeout_at(end, conn).await {
            Ok(result) => result.map_err(hyper_error),
            Err(_) => Err(Error::HttpResponseTimeout),
        }
    });
    Ok((response, io))
}

/// Runs `work` until `limit` from now if that ends before `deadline` (failing with `on_limit`),
/// otherwise until a little past `deadline`.
async fn within<T>(
    work: impl Future<Output = Result<T, Error>>,
    limit: Option<Duration>,
    deadline: Instant,
    on_limit: Error,
) -> Result<T, Error> {
    let (end, error) = phase_end(limit, deadline, on_limit);
    tokio::time::timeout_at(end.into(), work)
        .await
        .unwrap_or(Err(error))
}

/// When a wait bounded by the guest's `limit` ends, and the error it ends with.
fn phase_end(limit: Option<Duration>, deadline: Instant, on_limit: Error) -> (Instant, Error) {
    match limit.and_then(|l| Instant::now().checked_add(l)) {
        Some(end) if end < deadline => (end, on_limit),
        _ => (deadline + PAST_DEADLINE, Error::HttpResponseTimeout),
    }
}

/// Resolves `host` and connects to the first address that answers.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    let mut last = Error::DestinationNotFound;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = connect_error(&e),
        }
    }
    Err(last)
}

fn connect_error(e: &std::io::Error) -> Error {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        ErrorKind::TimedOut => Error::ConnectionTimeout,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            Error::DestinationIpUnroutable
        }
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Error::ConnectionTerminated,
        _ => Error::DestinationUnavailable,
    }
}

/// The name the server's certificate must carry: the host name, or the IP address.
fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(bare.to_owned()).map_err(|_| Error::HttpRequestUriInvalid),
    }
}

fn tls_error(e: std::io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => Error::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => Error::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        Some(_) => Error::TlsProtocolError,
        None => connect_error(&e),
    }
}

/// A hyper error as a `wasi:http` error; what has no closer code stays a hyper error (the hook
/// maps it, or finds a guest body's error code in it).
fn hyper_error(e: hyper::Error) -> Error {
    if e.is_timeout() {
        Error::HttpResponseTimeout
    } else if e.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else if e.is_canceled() || e.is_closed() {
        Error::ConnectionTerminated
    } else {
        Error::Hyper(e)
    }
}

fn content_length<B>(response: &Response<B>) -> Option<u64> {
    response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The client configuration for HTTPS: the system's root certificates (read once), rustls with
/// its ring provider, TLS 1.2 and 1.3.
fn system_tls() -> Result<Arc<ClientConfig>, Error> {
    static TLS: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "reading the system's root certificates");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system root certificates for handlers' https requests");
        if roots.is_empty() {
            return Err("no system root certificates found (install ca-certificates, or set SSL_CERT_FILE or SSL_CERT_DIR)".into());
        }
        tls_config(roots).map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|why| {
        tracing::warn!("handlers' https requests fail: {why}");
        Error::InternalError(Some(why))
    })
}

/// A client configuration verifying servers against `roots`.
fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A response body read through the cap and the between-bytes bound.
struct CappedBody {
    inner: Incoming,
    cap: usize,
    seen: usize,
    between: Option<Duration>,
    deadline: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Whether the timer is the guest's between-bytes bound (else the one past the deadline).
    own_limit: bool,
    done: bool,
}

impl CappedBody {
    fn new(inner: Incoming, cap: usize, between: Option<Duration>, deadline: Instant) -> Self {
        let mut body = CappedBody {
            inner,
            cap,
            seen: 0,
            between,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline.into())),
            own_limit: false,
            done: false,
        };
        body.arm();
        body
    }

    /// Sets the timer for the next frame.
    fn arm(&mut self) {
        let (end, error) = phase_end(self.between, self.deadline, Error::ConnectionReadTimeout);
        self.own_limit = matches!(error, Error::ConnectionReadTimeout);
        self.timer.as_mut().reset(end.into());
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len());
                    if this.seen > this.cap {
                        return this.fail(Error::HttpResponseBodySize(Some(this.cap as u64)));
                    }
                }
                this.arm();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(hyper_error(e)),
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                let error = if this.own_limit {
                    Error::ConnectionReadTimeout
                } else {
                    Error::HttpResponseTimeout
                };
                this.fail(error)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{Empty, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;

    fn allow(s: &str) -> HttpAllow {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refusal(s: &str) -> String {
        match s.parse::<HttpAllow>() {
            Ok(a) => panic!("{s} parsed as {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_origins_and_prefixes() {
        let a = allow("http://127.0.0.1:8500");
        assert_eq!(
            (a.scheme(), a.host(), a.port(), a.path_prefix()),
            ("http", "127.0.0.1", 8500, "/")
        );
        let a = allow("https://Hooks.Example.COM/ci/");
        assert_eq!(
            (a.scheme(), a.host(), a.port(), a.path_prefix()),
            ("https", "hooks.example.com", 443, "/ci/")
        );
        let a = allow("HTTP://[0:0::1]:8080/x");
        assert_eq!((a.scheme(), a.host(), a.port()), ("http", "[::1]", 8080));
        assert_eq!(allow("https://[::1]").port(), 443);
        assert_eq!(allow("http://a-b.example").port(), 80);
    }

    #[test]
    fn displays_back_as_text() {
        for (input, shown) in [
            ("http://127.0.0.1:8500", "http://127.0.0.1:8500/"),
            (
                "https://Hooks.Example.com/ci/",
                "https://hooks.example.com/ci/",
            ),
            (
                "https://hooks.example.com:443/ci",
                "https://hooks.example.com/ci",
            ),
            (
                "http://hooks.example.com:443/",
                "http://hooks.example.com:443/",
            ),
            ("http://[::1]:9000/a/b", "http://[::1]:9000/a/b"),
        ] {
            let a = allow(input);
            assert_eq!(a.to_string(), shown);
            assert_eq!(allow(shown), a, "round trip of {shown}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_plain_origin_and_prefix() {
        for (input, why) in [
            ("ftp://example.com/", "not http or https"),
            ("ws://example.com/", "not http or https"),
            ("example.com", "expected scheme://"),
            ("http://user@example.com/", "user info"),
            ("http://user:pw@example.com/", "user info"),
            ("http://example.com/?q=1", "query or fragment"),
            ("http://example.com/#top", "query or fragment"),
            ("http:///ci", "host is empty"),
            ("http://", "host is empty"),
            ("http://:80/", "host is empty"),
            ("http://*.example.com/", "wildcards"),
            ("http://*/", "wildcards"),
            ("http://example.com/ci/../admin", ". or .. segments"),
            ("http://example.com/ci/%2e%2e/admin", "percent-encoded"),
            ("http://example.com/./ci", ". or .. segments"),
            ("http://example.com:0/", "out of range"),
            ("http://example.com:65536/", "out of range"),
            ("http://example.com:/", "not a number"),
            ("http://example.com:8o/", "not a number"),
            ("http://127.1/", "not an IPv4 address"),
            ("http://[::1/", "must end with ']'"),
            ("http://[fe80::1%25eth0]/", "not an IPv6 address"),
            ("http://exa_mple.com/", "not a host name"),
            ("http://example..com/", "not a host name"),
            ("http://example.com /", "spaces"),
            ("http://example.com/a\nb", "control characters"),
        ] {
            let message = refusal(input);
            assert!(message.contains(why), "{input}: {message}");
            assert!(
                message.contains(&format!("{input:?}")),
                "{message} names its input"
            );
        }
    }

    #[test]
    fn matches_whole_path_segments_under_the_prefix() {
        for prefix in ["/ci", "/ci/"] {
            let a = allow(&format!("http://127.0.0.1:8500{prefix}"));
            for ok in [
                "/ci",
                "/ci/",
                "/ci/x",
                "/ci/x/y?z=1",
                "/ci?x=../",
                "/ci/a%20b",
            ] {
                assert!(
                    a.allows("http", "127.0.0.1:8500", ok),
                    "{prefix} allows {ok}"
                );
            }
            for no in ["/cix", "/c", "/", "", "/admin", "/CI/x", "/x/ci", "//ci/x"] {
                assert!(
                    !a.allows("http", "127.0.0.1:8500", no),
                    "{prefix} refuses {no}"
                );
            }
        }
        let root = allow("http://127.0.0.1:8500");
        for ok in ["", "/", "/anything/at/all?x", "?q"] {
            assert!(root.allows("http", "127.0.0.1:8500", ok), "/ allows {ok:?}");
        }
    }

    #[test]
    fn refuses_traversal_in_every_spelling() {
        let a = allow("http://127.0.0.1:8500/ci/");
        for path in [
            "/ci/../admin",
            "/ci/./x",
            "/ci/..",
            "/ci/.",
            "/ci/%2e%2e/admin",
            "/ci/%2E%2E/admin",
            "/ci/.%2e/admin",
            "/ci/%2e./admin",
            "/ci/%2e/x",
            "/ci%2f..%2fadmin",
            "/ci/x%2Fy",
            "/ci/%5c..%5cadmin",
            "/ci\\..\\admin",
            "/ci/%252e%252e/admin",
            "/ci/..;/admin",
            "/ci/..;x=1/admin",
            "/ci/%00",
            "/ci/%zz",
            "/ci/%2",
        ] {
            assert!(!a.allows("http", "127.0.0.1:8500", path), "refuses {path}");
            assert!(!path_is_clean(path), "{path} is not clean");
        }
    }

    #[test]
    fn matches_scheme_host_and_port_exactly() {
        let a = allow("http://localhost:8500/");
        assert!(a.allows("http", "localhost:8500", "/"));
        assert!(
            a.allows("HTTP", "LocalHost:8500", "/"),
            "scheme and host ignore case"
        );
        assert!(!a.allows("https", "localhost:8500", "/"), "other scheme");
        assert!(!a.allows("ftp", "localhost:8500", "/"), "other scheme");
        assert!(!a.allows("http", "localhost:8501", "/"), "other port");
        assert!(
            !a.allows("http", "localhost", "/"),
            "default port 80 is another port"
        );
        assert!(!a.allows("http", "localhost.:8500", "/"), "other host");
        assert!(!a.allows("http", "evil.localhost:8500", "/"), "other host");
        assert!(!a.allows("http", "user@localhost:8500", "/"), "user info");
        assert!(
            !a.allows("http", "localhost:8500@evil.example", "/"),
            "user info"
        );
        assert!(!a.allows("http", "localhost:08500x", "/"), "bad port");

        let ip = allow("http://127.0.0.1:8500/");
        assert!(!ip.allows("http", "127.1:8500", "/"), "shorthand address");
        assert!(
            !ip.allows("http", "localhost:8500", "/"),
            "a name is not the address"
        );

        let v6 = allow("http://[::1]:8500/");
        assert!(
            v6.allows("http", "[0::1]:8500", "/"),
            "IPv6 compared as an address"
        );
        assert!(!v6.allows("http", "[::2]:8500", "/"));

        let tls = allow("https://hooks.example.com/ci/");
        assert!(tls.allows("https", "hooks.example.com", "/ci/build"));
        assert!(tls.allows("https", "hooks.example.com:443", "/ci"));
        assert!(!tls.allows("https", "hooks.example.com:8443", "/ci/build"));
        assert!(!tls.allows("http", "hooks.example.com:443", "/ci/build"));
    }

    #[test]
    fn any_entry_may_allow_and_connect_never_passes() {
        let list = [allow("http://127.0.0.1:1/a"), allow("http://127.0.0.1:2/b")];
        assert!(allowed(&list, "http", "127.0.0.1:1", "/a/x"));
        assert!(allowed(&list, "http", "127.0.0.1:2", "/b"));
        assert!(!allowed(&list, "http", "127.0.0.1:1", "/b"));
        assert!(!allowed(&[], "http", "127.0.0.1:1", "/a"));
        let uri: Uri = "http://127.0.0.1:1/a".parse().unwrap();
        assert!(allowed_request(&list, &Method::POST, &uri));
        assert!(!allowed_request(&list, &Method::CONNECT, &uri));
    }

    #[test]
    fn the_guests_timeouts_apply_only_before_the_deadline() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (_, e) = phase_end(
            Some(Duration::from_secs(1)),
            deadline,
            Error::ConnectionTimeout,
        );
        assert!(matches!(e, Error::ConnectionTimeout));
        let (end, e) = phase_end(
            Some(Duration::from_secs(600)),
            deadline,
            Error::ConnectionTimeout,
        );
        assert!(matches!(e, Error::HttpResponseTimeout));
        assert_eq!(end, deadline + PAST_DEADLINE);
        let (end, _) = phase_end(None, deadline, Error::ConnectionTimeout);
        assert_eq!(end, deadline + PAST_DEADLINE);
    }

    /// A loopback server answering every connection with `response` (after reading the request
    /// head); counts the connections it accepted.
    async fn server(response: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let response = response.clone();
                tokio::spawn(async move {
                    read_head(&mut socket).await;
                    let _ = socket.write_all(&response).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (port, accepted)
    }

    async fn read_head<S: AsyncRead + Unpin>(socket: &mut S) -> Vec<u8> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match socket.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        head
    }

    fn get(url: &str) -> Request<WasiBody> {
        let uri: Uri = url.parse().unwrap();
        Request::get(uri.clone())
            .header(hyper::header::HOST, uri.authority().unwrap().as_str())
            .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())
            .unwrap()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(120)
    }

    async fn body_of(response: Response<WasiBody>) -> Result<Vec<u8>, Error> {
        Ok(response.into_body().collect().await?.to_bytes().to_vec())
    }

    async fn answer(
        allow: &[HttpAllow],
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(u16, Vec<u8>), Error> {
        let (response, io) = Pin::from(send_request(allow, far(), 1024, request, options)).await?;
        tokio::spawn(Pin::from(io));
        let status = response.status().as_u16();
        Ok((status, body_of(response).await?))
    }

    #[tokio::test]
    async fn an_allowed_request_is_answered() {
        let (port, accepted) =
            server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()).await;
        let list = [allow(&format!("http://127.0.0.1:{port}/ci"))];
        let (status, body) = answer(
            &list,
            get(&format!("http://127.0.0.1:{port}/ci/x?y=1")),
            None,
        )
        .await
        .unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_denied_request_opens_no_connection() {
        let (port, accepted) =
            server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        let list = [allow(&format!("http://127.0.0.1:{port}/ci"))];
        for url in [
            format!("http://127.0.0.1:{port}/cix"),
            format!("http://127.0.0.1:{port}/ci/../admin"),
            format!("http://127.0.0.1:{port}/ci/%2e%2e/admin"),
            format!("https://127.0.0.1:{port}/ci"),
            format!("http://localhost:{port}/ci"),
        ] {
            let result = answer(&list, get(&url), None).await;
            assert!(
                matches!(result, Err(Error::HttpRequestDenied)),
                "{url}: {result:?}"
            );
        }
        let result = answer(&[], get(&format!("http://127.0.0.1:{port}/ci")), None).await;
        assert!(
            matches!(result, Err(Error::HttpRequestDenied)),
            "{result:?}"
        );
        // Denials are decided before the future is made, so the server had its chance to see any
        // connection by the time an allowed request is answered on the next one.
        answer(&list, get(&format!("http://127.0.0.1:{port}/ci")), None)
            .await
            .unwrap();
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "only the allowed request connected"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_an_error() {
        // Announced by Content-Length: refused before the body.
        let mut long = b"HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n".to_vec();
        long.extend_from_slice(&[b'x'; 1025]);
        let (port, _) = server(long).await;
        let list = [allow(&format!("http://127.0.0.1:{port}"))];
        let result = answer(&list, get(&format!("http://127.0.0.1:{port}/")), None).await;
        assert!(
            matches!(result, Err(Error::HttpResponseBodySize(Some(1025)))),
            "{result:?}"
        );

        // Chunked: the read that passes the cap fails.
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b'y'; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (port, _) = server(chunked).await;
        let list = [allow(&format!("http://127.0.0.1:{port}"))];
        let result = answer(&list, get(&format!("http://127.0.0.1:{port}/")), None).await;
        assert!(
            matches!(result, Err(Error::HttpResponseBodySize(Some(1024)))),
            "{result:?}"
        );

        // Exactly at the cap is fine.
        let mut full = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n".to_vec();
        full.extend_from_slice(&[b'z'; 1024]);
        let (port, _) = server(full).await;
        let list = [allow(&format!("http://127.0.0.1:{port}"))];
        let (_, body) = answer(&list, get(&format!("http://127.0.0.1:{port}/")), None)
            .await
            .unwrap();
        assert_eq!(body.len(), 1024);
    }

    #[tokio::test]
    async fn the_guests_first_byte_timeout_ends_a_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and holds the connection, never answering.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let list = [allow(&format!("http://127.0.0.1:{port}"))];
        let options = RequestOptions {
            first_byte_timeout: Some(Duration::from_millis(50)),
            ..RequestOptions::default()
        };
        let result = answer(
            &list,
            get(&format!("http://127.0.0.1:{port}/")),
            Some(options),
        )
        .await;
        assert!(
            matches!(result, Err(Error::ConnectionReadTimeout)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connection_error() {
        // Bind and drop a listener: its port then refuses connections.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let list = [allow(&format!("http://127.0.0.1:{port}"))];
        let result = answer(&list, get(&format!("http://127.0.0.1:{port}/")), None).await;
        assert!(
            matches!(result, Err(Error::ConnectionRefused)),
            "{result:?}"
        );
    }

    /// A loopback HTTPS server with a self-signed certificate for 127.0.0.1; its certificate.
    async fn tls_server() -> (u16, CertificateDer<'static>) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    read_head(&mut tls).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, cert)
    }

    static TEST_ROOT: OnceLock<CertificateDer<'static>> = OnceLock::new();

    fn test_roots() -> Result<Arc<ClientConfig>, Error> {
        let mut roots = RootCertStore::empty();
        roots.add(TEST_ROOT.get().unwrap().clone()).unwrap();
        Ok(tls_config(roots).unwrap())
    }

    #[tokio::test]
    async fn https_verifies_the_server_certificate() {
        let (port, cert) = tls_server().await;
        let url = format!("https://127.0.0.1:{port}/");
        let options = RequestOptions::default();

        // The system's roots never signed a fresh self-signed certificate.
        if system_tls().is_ok() {
            let result = send(get(&url), options, far(), 1024, system_tls).await;
            assert!(
                matches!(result, Err(Error::TlsCertificateError)),
                "{:?}",
                result.err()
            );
        }

        // Trusting it, the same path answers.
        TEST_ROOT.set(cert).unwrap();
        let (response, io) = send(get(&url), options, far(), 1024, test_roots)
            .await
            .unwrap();
        tokio::spawn(Pin::from(io));
        assert_eq!(response.status(), 200);
        assert_eq!(body_of(response).await.unwrap(), b"secret");
    }

    #[tokio::test]
    async fn an_event_sends_a_bounded_number_of_requests() {
        let mut http = OutboundHttp::new("t".into(), Arc::from(Vec::new()), far());
        let mut table = ResourceTable::new();
        let view = http.view(&mut table, far());
        for n in 1..=HTTP_REQUESTS_PER_EVENT + 2 {
            let sent = view.hooks.send_request(
                get("http://127.0.0.1:1/"),
                None,
                Box::new(async { Ok(()) }),
            );
            let result = Pin::from(sent).await.map(|_| ());
            if n <= HTTP_REQUESTS_PER_EVENT {
                assert!(
                    matches!(result, Err(Error::HttpRequestDenied)),
                    "{n}: {result:?}"
                );
            } else {
                assert!(
                    matches!(result, Err(Error::ConnectionLimitReached)),
                    "{n}: {result:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_request_body_is_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let head = read_head(&mut socket).await;
            let mut body = [0u8; 4];
            socket.read_exact(&mut body).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            (String::from_utf8(head).unwrap(), body)
        });
        let list = [allow(&format!("http://127.0.0.1:{port}/hook"))];
        let request = Request::post(format!("http://127.0.0.1:{port}/hook?x=1"))
            .header(hyper::header::HOST, format!("127.0.0.1:{port}"))
            .header(hyper::header::CONTENT_LENGTH, "4")
            .body(
                Full::new(Bytes::from_static(b"ping"))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            )
            .unwrap();
        let (status, _) = answer(&list, request, None).await.unwrap();
        assert_eq!(status, 204);
        let (head, body) = seen.await.unwrap();
        assert!(head.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{head}");
        assert_eq!(&body, b"ping");
    }
}
