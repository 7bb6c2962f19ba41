//! Outbound HTTP for handlers: a small blocking client over `wasi:http`.
//!
//! ```ignore
//! let r = hearsay_sdk::http::get("http://127.0.0.1:8500/v1/status/leader")?;
//! hearsay_sdk::reply(r.text().as_bytes())?;
//!
//! hearsay_sdk::http::Request::post("https://hooks.example.com/ci/deploy")
//!     .header("content-type", "application/json")
//!     .body(r#"{"ref":"main"}"#)
//!     .send()?;
//! ```
//!
//! The agent sends a request only where the operator's `http` grants for the handler allow (an
//! origin and a path prefix each); anything else fails with [`HttpError::Denied`] and opens no
//! connection. The whole exchange counts against the event's timeout, and the agent caps how
//! large a response body may be ([`HttpError::TooLarge`]). Redirects are not followed: a 3xx is
//! returned as it is.

use std::fmt;
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// Bytes written to the request body per call (the most a blocking write takes at once).
const WRITE_CHUNK: usize = 4096;
/// Bytes asked for per read of the response body.
const READ_CHUNK: u64 = 64 << 10;

/// Sends a `GET` request to `url` and reads the whole response.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::get(url).send()
}

/// An HTTP request to build and [`send`](Request::send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// A response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The header fields in the order received; names are lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The agent's allow-list (the operator's `http` grants for this handler) does not include
    /// this URL; no connection was made.
    Denied,
    /// The request could not be made as given: a URL that is not `http(s)://host[:port]/...`, a
    /// method, header or body the agent refused.
    InvalidRequest(String),
    /// No connection: the name did not resolve, the connection was refused or timed out, or TLS
    /// failed (e.g. a certificate the system does not trust).
    Connection(String),
    /// The response body is larger than the agent lets a handler receive.
    TooLarge,
    /// The exchange failed after connecting: a malformed or incomplete response, a read timeout.
    Response(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied => f.write_str("denied by the agent's http allow-list"),
            HttpError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            HttpError::Connection(why) => write!(f, "connection failed: {why}"),
            HttpError::TooLarge => f.write_str("response body larger than the agent allows"),
            HttpError::Response(why) => write!(f, "response failed: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Request {
    /// A request with `method` (e.g. `"GET"`, `"PATCH"`) to `url`.
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: &str) -> Request {
        Request::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: &str) -> Request {
        Request::new("PUT", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: &str) -> Request {
        Request::new("DELETE", url)
    }

    /// Adds a header field. `Host`, `Connection` and other hop-by-hop fields are the agent's and
    /// refused.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (sent with a `Content-Length`, unless a header gives one).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Bounds connecting, the wait for the response, and each wait between body bytes by
    /// `timeout` (the event's own timeout bounds the whole exchange anyway). Past it, the request
    /// fails with an error the handler can still report, rather than the event timing out.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response, blocking the handler until it is done.
    pub fn send(self) -> Result<Response, HttpError> {
        let (scheme, authority, target) = split_url(&self.url)?;
        let mut fields: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        let has_length = fields
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if !self.body.is_empty() && !has_length {
            fields.push((
                "content-length".into(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        let fields = Fields::from_list(&fields)
            .map_err(|e| HttpError::InvalidRequest(format!("header fields: {e:?}")))?;
        let request = OutgoingRequest::new(fields);
        request
            .set_method(&method(&self.method))
            .map_err(|()| HttpError::InvalidRequest(format!("method {:?}", self.method)))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| HttpError::InvalidRequest("scheme".into()))?;
        request
            .set_authority(Some(&authority))
            .map_err(|()| HttpError::InvalidRequest(format!("host {authority:?}")))?;
        request
            .set_path_with_query(Some(&target))
            .map_err(|()| HttpError::InvalidRequest(format!("path {target:?}")))?;
        let options = self.timeout.map(|t| {
            let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let options = RequestOptions::new();
            // A host may not support a timeout; the event's deadline still holds.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let body = request
            .body()
            .map_err(|()| HttpError::InvalidRequest("request body".into()))?;

        let future = outgoing_handler::handle(request, options).map_err(from_code)?;
        // The body streams to the connection once the request is handed over. A refused request
        // closes it early; then the response says why.
        if !self.body.is_empty() {
            if let Ok(stream) = body.write() {
                for chunk in self.body.chunks(WRITE_CHUNK) {
                    if stream.blocking_write_and_flush(chunk).is_err() {
                        break;
                    }
                }
            }
        }
        let finished = OutgoingBody::finish(body, None);
        let response = wait(&future)?;
        finished.map_err(from_code)?;
        read(response)
    }
}

/// Waits for the response head.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, HttpError> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(from_code(code)),
            Some(Err(())) => return Err(HttpError::Response("response already taken".into())),
            None => future.subscribe().block(),
        }
    }
}

/// Reads the status, header fields and whole body of `response`.
fn read(response: IncomingResponse) -> Result<Response, HttpError> {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = response
        .consume()
        .map_err(|()| HttpError::Response("response body already taken".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| HttpError::Response("response body already taken".into()))?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(match error_code(&e) {
                        Some(code) => from_code(code),
                        None => body_error(e.to_debug_string()),
                    });
                }
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

fn error_code(e: &wasip2::io::error::Error) -> Option<ErrorCode> {
    wasip2::http::types::http_error_code(e)
}

/// A body read error the host gave only as text.
fn body_error(text: String) -> HttpError {
    // wasmtime's text for its body size error (the agent's response body cap).
    if text.contains("body size exceeds limit") || text.contains("HttpResponseBodySize") {
        HttpError::TooLarge
    } else {
        HttpError::Response(format!("reading the body: {text}"))
    }
}

/// Splits `http(s)://authority/path?query#fragment` into its parts (the fragment is dropped).
fn split_url(url: &str) -> Result<(Scheme, String, String), HttpError> {
    let bad = |why: &str| HttpError::InvalidRequest(format!("url {url:?}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http://host/... or https://host/..."))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(bad("the scheme is not http or https")),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    let target = match target {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_string(),
    };
    Ok((scheme, authority.to_string(), target))
}

fn method(m: &str) -> Method {
    match m {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.into()),
    }
}

/// The error for a `wasi:http` error code.
fn from_code(code: ErrorCode) -> HttpError {
    use ErrorCode as C;
    let text = |s: &str| s.to_string();
    match code {
        C::HttpRequestDenied => HttpError::Denied,
        C::HttpResponseBodySize(_) => HttpError::TooLarge,
        C::DnsTimeout => HttpError::Connection(text("name lookup timed out")),
        C::DnsError(p) => HttpError::Connection(format!(
            "name lookup failed{}",
            p.rcode.map(|r| format!(": {r}")).unwrap_or_default()
        )),
        C::DestinationNotFound => HttpError::Connection(text("host not found")),
        C::DestinationUnavailable => HttpError::Connection(text("host unavailable")),
        C::DestinationIpProhibited => HttpError::Connection(text("address prohibited")),
        C::DestinationIpUnroutable => HttpError::Connection(text("address unreachable")),
        C::ConnectionRefused => HttpError::Connection(text("connection refused")),
        C::ConnectionTerminated => HttpError::Connection(text("connection closed")),
        C::ConnectionTimeout => HttpError::Connection(text("connect timed out")),
        C::ConnectionLimitReached => HttpError::Connection(text("too many requests in this event")),
        C::TlsProtocolError => HttpError::Connection(text("TLS protocol error")),
        C::TlsCertificateError => HttpError::Connection(text("TLS certificate not trusted")),
        C::TlsAlertReceived(p) => HttpError::Connection(format!(
            "TLS alert from the server{}",
            p.alert_message
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        C::ConnectionReadTimeout | C::HttpResponseTimeout => {
            HttpError::Response(text("timed out waiting for the server"))
        }
        C::ConnectionWriteTimeout => HttpError::Response(text("timed out sending the request")),
        C::HttpRequestMethodInvalid
        | C::HttpRequestUriInvalid
        | C::HttpRequestUriTooLong
        | C::HttpRequestLengthRequired
        | C::HttpRequestBodySize(_)
        | C::HttpRequestHeaderSectionSize(_)
        | C::HttpRequestHeaderSize(_)
        | C::HttpRequestTrailerSectionSize(_)
        | C::HttpRequestTrailerSize(_) => HttpError::InvalidRequest(format!("{code:?}")),
        C::InternalError(Some(why)) => HttpError::Response(why),
        other => HttpError::Response(format!("{other:?}")),
    }
}
