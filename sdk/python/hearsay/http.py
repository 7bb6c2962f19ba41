"""Outbound HTTP (``grants.http = ["http://127.0.0.1:8500/v1/"]``): a small blocking client.

::

    r = hearsay.http.get("http://127.0.0.1:8500/v1/status/leader")
    hearsay.reply(r.text)

    hearsay.http.request(
        "POST",
        "https://hooks.example.com/ci/deploy",
        headers={"content-type": "application/json"},
        body='{"ref": "main"}',
    )

The agent sends a request only where the handler's ``http`` grants allow (an origin and a path
prefix each); anything else raises :class:`HttpDenied` and opens no connection. The whole exchange
counts against the event's timeout, and the agent caps how large a response body may be
(:class:`HttpTooLarge`). Redirects are not followed: a 3xx comes back as it is. Every failure is an
:class:`HttpError` (its ``kind`` is ``denied``, ``invalid-request``, ``connection``, ``too-large``
or ``response``); an HTTP error status (404, 500, ...) is not: see :attr:`Response.status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple, Union

from componentize_py_types import Err
from wit_world.imports import outgoing_handler as _handler
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _t

from hearsay import Data, HearsayError, _bytes

__all__ = [
    "HttpConnectionError",
    "HttpDenied",
    "HttpError",
    "HttpInvalidRequest",
    "HttpResponseError",
    "HttpTooLarge",
    "Response",
    "get",
    "request",
]

Headers = Union[Mapping[str, str], Sequence[Tuple[str, str]]]

# Bytes per write of the request body and per read of the response body.
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 << 10


class HttpError(HearsayError):
    """A request failed; ``kind`` names how (the same five kinds in every hearsay SDK)."""

    kind: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.kind}: {message}")


class HttpDenied(HttpError):
    """The handler's ``http`` grants do not include the URL; no connection was made."""

    kind = "denied"

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"{url} is not on this handler's http allow-list (grants.http)")


class HttpInvalidRequest(HttpError):
    """The request cannot be made as given: a URL that is not ``http(s)://host[:port]/...``, or a
    method, header or body the agent refused."""

    kind = "invalid-request"


class HttpConnectionError(HttpError):
    """No connection: the name did not resolve, the connection was refused or timed out, or TLS
    failed (e.g. a certificate the system does not trust)."""

    kind = "connection"


class HttpTooLarge(HttpError):
    """The response body is larger than the agent lets a handler receive."""

    kind = "too-large"

    def __init__(self) -> None:
        super().__init__("the response body is larger than the agent allows")


class HttpResponseError(HttpError):
    """The exchange failed after connecting: a malformed or incomplete response, a timeout."""

    kind = "response"


@dataclass(frozen=True)
class Response:
    """A response, read whole."""

    status: int
    """The status code, e.g. 200."""
    headers: list[tuple[str, str]]
    """The header fields in the order received; names are lower case."""
    body: bytes
    """The body."""

    @property
    def text(self) -> str:
        """The body as text (UTF-8; invalid bytes become U+FFFD)."""
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name`` (any case), or ``default``."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)


def get(url: str, headers: Optional[Headers] = None, timeout: Optional[float] = None) -> Response:
    """Sends a ``GET`` request to ``url`` and reads the whole response."""
    return request("GET", url, headers=headers, timeout=timeout)


def request(
    method: str,
    url: str,
    headers: Optional[Headers] = None,
    body: Data = b"",
    timeout: Optional[float] = None,
) -> Response:
    """Sends a request and reads the whole response, blocking the handler until it is done.

    ``headers`` is a mapping or a sequence of (name, value) pairs; ``Host``, ``Connection`` and
    other hop-by-hop fields are the agent's and refused. A non-empty ``body`` goes with a
    ``Content-Length`` unless ``headers`` give one. ``timeout`` (seconds) bounds connecting, the
    wait for the response and each wait between body bytes, so that a slow server gives an error
    the handler can still report rather than the event timing out (the event's own timeout bounds
    the whole exchange anyway).
    """
    scheme, authority, target = _split_url(url)
    data = _bytes(body)
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers or [])
    if data and not any(k.lower() == "content-length" for k, _ in pairs):
        pairs.append(("content-length", str(len(data))))
    try:
        fields = _t.Fields.from_list([(k, v.encode()) for k, v in pairs])
    except Err as e:
        raise HttpInvalidRequest(f"header fields: {_name(e.value)}") from None
    outgoing = _t.OutgoingRequest(fields)
    _set(outgoing.set_method, _method(method), f"method {method!r}")
    _set(outgoing.set_scheme, scheme, "scheme")
    _set(outgoing.set_authority, authority, f"host {authority!r}")
    _set(outgoing.set_path_with_query, target, f"path {target!r}")
    options = None
    if timeout is not None:
        nanos = max(0, int(timeout * 1e9))
        options = _t.RequestOptions()
        # An agent may not support a timeout; the event's deadline still holds.
        for setter in (
            options.set_connect_timeout,
            options.set_first_byte_timeout,
            options.set_between_bytes_timeout,
        ):
            try:
                setter(nanos)
            except Err:
                pass
    out_body = outgoing.body()
    try:
        future = _handler.handle(outgoing, options)
    except Err as e:
        out_body.__exit__(None, None, None)
        raise _from_code(e.value, url) from None
    with future:
        # The body streams to the connection once the request is handed over. A refused request
        # closes it early; then the response says why.
        if data:
            with out_body.write() as stream:
                for at in range(0, len(data), _WRITE_CHUNK):
                    try:
                        stream.blocking_write_and_flush(data[at : at + _WRITE_CHUNK])
                    except Err:
                        break
        finish_error = None
        try:
            _t.OutgoingBody.finish(out_body, None)
        except Err as e:
            finish_error = e.value
        response = _wait(future, url)
    with response:
        if finish_error is not None:
            raise _from_code(finish_error, url)
        return _read(response, url)


def _set(setter: object, value: object, what: str) -> None:
    try:
        setter(value)  # type: ignore[operator]
    except Err:
        raise HttpInvalidRequest(what) from None


def _wait(future: _t.FutureIncomingResponse, url: str) -> _t.IncomingResponse:
    while True:
        got = future.get()
        if got is None:
            with future.subscribe() as ready:
                ready.block()
            continue
        if isinstance(got, Err):
            raise HttpResponseError("the response was already taken")
        outcome = got.value
        if isinstance(outcome, Err):
            raise _from_code(outcome.value, url)
        return outcome.value


def _read(response: _t.IncomingResponse, url: str) -> Response:
    status = response.status()
    with response.headers() as fields:
        headers = [(k, v.decode("utf-8", errors="replace")) for k, v in fields.entries()]
    chunks = []
    with response.consume() as body:
        with body.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(_READ_CHUNK))
                except Err as e:
                    if isinstance(e.value, _streams.StreamError_Closed):
                        break
                    raise _body_error(e.value.value, url) from None
    return Response(status=status, headers=headers, body=b"".join(chunks))


def _body_error(error: object, url: str) -> HttpError:
    code = _t.http_error_code(error)  # type: ignore[arg-type]
    if code is not None:
        return _from_code(code, url)
    text = error.to_debug_string()  # type: ignore[attr-defined]
    # wasmtime's text for its body size error (the agent's response body cap).
    if "body size exceeds limit" in text or "HttpResponseBodySize" in text:
        return HttpTooLarge()
    return HttpResponseError(f"reading the body: {text}")


def _split_url(url: str) -> tuple[_t.Scheme, str, str]:
    def bad(why: str) -> HttpInvalidRequest:
        return HttpInvalidRequest(f"url {url!r}: {why}")

    scheme, sep, rest = url.partition("://")
    if not sep:
        raise bad("expected http://host/... or https://host/...")
    kinds = {"http": _t.Scheme_Http(), "https": _t.Scheme_Https()}
    if scheme.lower() not in kinds:
        raise bad("the scheme is not http or https")
    rest = rest.split("#", 1)[0]
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, target = rest[:end], rest[end:]
    if not authority:
        raise bad("no host")
    if not target.startswith("/"):
        target = "/" + target
    return kinds[scheme.lower()], authority, target


_METHODS = {
    "GET": _t.Method_Get,
    "HEAD": _t.Method_Head,
    "POST": _t.Method_Post,
    "PUT": _t.Method_Put,
    "DELETE": _t.Method_Delete,
    "CONNECT": _t.Method_Connect,
    "OPTIONS": _t.Method_Options,
    "TRACE": _t.Method_Trace,
    "PATCH": _t.Method_Patch,
}


def _method(name: str) -> _t.Method:
    known = _METHODS.get(name)
    return known() if known is not None else _t.Method_Other(name)


def _name(case: object) -> str:
    """A WIT variant case's name, e.g. ``ErrorCode_ConnectionRefused`` -> ``ConnectionRefused``."""
    return type(case).__name__.partition("_")[2] or type(case).__name__


_CONNECTION = {
    _t.ErrorCode_DnsTimeout: "name lookup timed out",
    _t.ErrorCode_DnsError: "name lookup failed",
    _t.ErrorCode_DestinationNotFound: "host not found",
    _t.ErrorCode_DestinationUnavailable: "host unavailable",
    _t.ErrorCode_DestinationIpProhibited: "address prohibited",
    _t.ErrorCode_DestinationIpUnroutable: "address unreachable",
    _t.ErrorCode_ConnectionRefused: "connection refused",
    _t.ErrorCode_ConnectionTerminated: "connection closed",
    _t.ErrorCode_ConnectionTimeout: "connect timed out",
    _t.ErrorCode_ConnectionLimitReached: "too many requests in this event",
    _t.ErrorCode_TlsProtocolError: "TLS protocol error",
    _t.ErrorCode_TlsCertificateError: "TLS certificate not trusted",
    _t.ErrorCode_TlsAlertReceived: "TLS alert from the server",
}

_INVALID = (
    _t.ErrorCode_HttpRequestMethodInvalid,
    _t.ErrorCode_HttpRequestUriInvalid,
    _t.ErrorCode_HttpRequestUriTooLong,
    _t.ErrorCode_HttpRequestLengthRequired,
    _t.ErrorCode_HttpRequestBodySize,
    _t.ErrorCode_HttpRequestHeaderSectionSize,
    _t.ErrorCode_HttpRequestHeaderSize,
    _t.ErrorCode_HttpRequestTrailerSectionSize,
    _t.ErrorCode_HttpRequestTrailerSize,
)


def _from_code(code: object, url: str) -> HttpError:
    """The error for a ``wasi:http`` error code."""
    if isinstance(code, _t.ErrorCode_HttpRequestDenied):
        return HttpDenied(url)
    if isinstance(code, _t.ErrorCode_HttpResponseBodySize):
        return HttpTooLarge()
    connection = _CONNECTION.get(type(code))
    if connection is not None:
        return HttpConnectionError(connection)
    if isinstance(code, (_t.ErrorCode_ConnectionReadTimeout, _t.ErrorCode_HttpResponseTimeout)):
        return HttpResponseError("timed out waiting for the server")
    if isinstance(code, _t.ErrorCode_ConnectionWriteTimeout):
        return HttpResponseError("timed out sending the request")
    if isinstance(code, _INVALID):
        return HttpInvalidRequest(_name(code))
    if isinstance(code, _t.ErrorCode_InternalError) and code.value:
        return HttpResponseError(code.value)
    return HttpResponseError(_name(code))
