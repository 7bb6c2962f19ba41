"""hearsay: write a hearsay event handler in a few lines of Python.

A handler is a WebAssembly component implementing the ``hearsay:handler`` world
(``wit/handler.wit``); ``build.sh`` turns a project's ``app.py`` into one with componentize-py.
``app.py`` defines exactly one handler, either a subclass of :class:`Handler`::

    import hearsay

    class Echo(hearsay.Handler):
        def on_query(self, query: hearsay.Query) -> None:
            hearsay.reply(query.payload)

        def on_user_event(self, event: hearsay.UserEvent) -> None:
            hearsay.info(f"user event {event.name}: {event.text}")

or a function decorated with :func:`handler`::

    @hearsay.handler
    def handle(event: hearsay.Event) -> None:
        if isinstance(event, hearsay.Query):
            hearsay.reply(event.payload)

The agent calls the handler once per event, each time in a fresh instance: nothing survives
between events. ``app.py``'s module-level code runs once, at build time, and its result is part of
the component (imports cost nothing per event); the handler object is made per event. An exception
that escapes the handler becomes the handler's error (logged by the agent, counted as a handler
error): a :class:`HearsayError` (:class:`HandlerError`, :class:`ReplyError`, :class:`EmitError`,
:class:`CommandError`, :class:`KvError`, :class:`TagError`) gives its message as it is, any other
exception ``"TypeName: message (at file:line)"``.

Everything beyond the event needs a grant from the operator, named in the handler's
``[[handler]]`` block; without one the call raises a ``*NotGranted`` error and nothing happens:
files, environment, real clocks, :func:`emit`, :func:`hearsay.commands.run <hearsay.commands.run>`
(operator-approved commands), :mod:`hearsay.kv` (a persistent key-value store),
:mod:`hearsay.tags` (this node's tags) and timers (``events = "every:10s"`` delivers
:class:`Tick` events). ``print`` goes nowhere useful (the agent shows a guest's output only when it
traps): log with :func:`info` and friends instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, TypeVar, Union

from componentize_py_types import Err
from wit_world.imports import cluster as _cluster
from wit_world.imports import emit as _emit
from wit_world.imports import log as _log
from wit_world.imports import reply as _reply
from wit_world.imports import hearsay_handler_types as _wit

__all__ = [
    "AlreadyReplied",
    "CommandError",
    "CommandFailed",
    "CommandNotGranted",
    "CommandOutput",
    "EmitError",
    "EmitRejected",
    "EmitTooLarge",
    "Event",
    "Handler",
    "HandlerError",
    "HearsayError",
    "KvBadKey",
    "KvError",
    "KvNotGranted",
    "KvQuotaExceeded",
    "KvStoreError",
    "Level",
    "Member",
    "MemberEvent",
    "MemberEventKind",
    "MemberStatus",
    "NotAQuery",
    "NotGranted",
    "Query",
    "ReplyClosed",
    "ReplyError",
    "ReplyStream",
    "ReplyTooLarge",
    "TagError",
    "TagNotGranted",
    "TagRejected",
    "Tick",
    "UserEvent",
    "commands",
    "debug",
    "emit",
    "error",
    "handler",
    "info",
    "kv",
    "local_member",
    "log",
    "members",
    "reply",
    "reply_stream",
    "tags",
    "trace",
    "warn",
    "warning",
]

Data = Union[bytes, bytearray, memoryview, str]
"""What a reply or an event payload may be given as: bytes, or text (sent as UTF-8)."""


def _bytes(data: Data) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected bytes or str, got {type(data).__name__}")


# ---------------------------------------------------------------------------------------------
# Members and events
# ---------------------------------------------------------------------------------------------


class MemberStatus(str, enum.Enum):
    """A member's state as gossip sees it (Serf's MemberStatus). The value is the WIT name."""

    NONE = "none"
    """Not known (Serf's StatusNone)."""
    ALIVE = "alive"
    """Alive and reachable."""
    LEAVING = "leaving"
    """Announced that it is leaving; still reachable."""
    LEFT = "left"
    """Left the cluster gracefully."""
    FAILED = "failed"
    """Stopped answering probes: declared dead by the failure detector."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Member:
    """One cluster member."""

    name: str
    """The node name, unique in the cluster."""
    addr: str
    """The gossip address, as text ("10.0.0.5" or "fd00::5")."""
    port: int
    """The gossip port."""
    tags: Mapping[str, str]
    """The member's tags, e.g. {"role": "web", "service:api": "8080"}."""
    status: MemberStatus
    """The member's state."""
    rtt_micros: Optional[int] = None
    """Estimated round-trip time from this node in microseconds, None when not known."""

    def tag(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The value of tag ``key``, or ``default`` when the member does not have it."""
        return self.tags.get(key, default)

    @property
    def address(self) -> str:
        """The gossip address with its port: "10.0.0.5:7946", "[fd00::5]:7946"."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{host}:{self.port}"

    @property
    def alive(self) -> bool:
        """Whether the member is alive."""
        return self.status is MemberStatus.ALIVE


class MemberEventKind(str, enum.Enum):
    """What happened to the members of a :class:`MemberEvent`. The value is Serf's filter name."""

    JOIN = "member-join"
    """Members joined the cluster."""
    LEAVE = "member-leave"
    """Members left gracefully."""
    FAILED = "member-failed"
    """Members were declared failed."""
    UPDATE = "member-update"
    """Members changed their tags."""
    REAP = "member-reap"
    """Failed or left members were reaped (forgotten)."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class MemberEvent:
    """Members joined, left, failed, changed tags or were reaped (Serf coalesces them)."""

    kind: MemberEventKind
    """What happened."""
    members: Sequence[Member]
    """Every member concerned."""

    def describe(self) -> str:
        """The event in Serf's filter syntax: "member-join", ..."""
        return self.kind.value


@dataclass(frozen=True)
class UserEvent:
    """A user event (Serf's ``serf event NAME PAYLOAD``)."""

    name: str
    """The event name (without the "user:" filter prefix)."""
    payload: bytes
    """The opaque payload."""
    ltime: int
    """The event's Lamport time."""
    coalesce: bool
    """Whether the sender allowed coalescing of events with this name."""

    @property
    def text(self) -> str:
        """The payload as text (UTF-8; invalid bytes become U+FFFD)."""
        return self.payload.decode("utf-8", errors="replace")

    def describe(self) -> str:
        """The event in Serf's filter syntax: "user:NAME"."""
        return f"user:{self.name}"


@dataclass(frozen=True)
class Query:
    """A query (Serf's ``serf query NAME PAYLOAD``): answer it with :func:`reply` or
    :func:`reply_stream`."""

    id: int
    """The query's id, unique per originating node and Lamport time."""
    name: str
    """The query name (without the "query:" filter prefix)."""
    payload: bytes
    """The opaque payload."""
    ltime: int
    """The query's Lamport time."""
    source_node: str
    """The name of the node that asked."""

    @property
    def text(self) -> str:
        """The payload as text (UTF-8; invalid bytes become U+FFFD)."""
        return self.payload.decode("utf-8", errors="replace")

    def describe(self) -> str:
        """The event in Serf's filter syntax: "query:NAME"."""
        return f"query:{self.name}"


@dataclass(frozen=True)
class Tick:
    """A timer fired: the handler's filter has ``every:DURATION`` (``events = "every:10s"``)."""

    period_ms: int
    """The timer's period, in milliseconds."""
    count: int
    """How many times this timer has fired since the handler was loaded, from 1. Ticks that come
    while the handler is still busy with earlier ones are skipped, not queued."""

    @property
    def period(self) -> float:
        """The timer's period, in seconds."""
        return self.period_ms / 1000

    def describe(self) -> str:
        """The event's kind: "tick"."""
        return "tick"


Event = Union[MemberEvent, UserEvent, Query, Tick]
"""What happened: ``match event: case hearsay.Query(): ...`` or ``isinstance`` tells which."""


_STATUS = {
    _wit.MemberStatus.NONE: MemberStatus.NONE,
    _wit.MemberStatus.ALIVE: MemberStatus.ALIVE,
    _wit.MemberStatus.LEAVING: MemberStatus.LEAVING,
    _wit.MemberStatus.LEFT: MemberStatus.LEFT,
    _wit.MemberStatus.FAILED: MemberStatus.FAILED,
}

_MEMBER_KIND = {
    _wit.Event_MemberJoin: MemberEventKind.JOIN,
    _wit.Event_MemberLeave: MemberEventKind.LEAVE,
    _wit.Event_MemberFailed: MemberEventKind.FAILED,
    _wit.Event_MemberUpdate: MemberEventKind.UPDATE,
    _wit.Event_MemberReap: MemberEventKind.REAP,
}


def _member(m: _wit.Member) -> Member:
    return Member(m.name, m.addr, m.port, dict(m.tags), _STATUS[m.status], m.rtt_micros)


def _event(raw: _wit.Event) -> Event:
    if isinstance(raw, _wit.Event_Query):
        q = raw.value
        return Query(q.id, q.name, q.payload, q.ltime, q.source_node)
    if isinstance(raw, _wit.Event_User):
        u = raw.value
        return UserEvent(u.name, u.payload, u.ltime, u.coalesce)
    if isinstance(raw, _wit.Event_Tick):
        t = raw.value
        return Tick(t.period_ms, t.count)
    return MemberEvent(_MEMBER_KIND[type(raw)], [_member(m) for m in raw.value])


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class HearsayError(Exception):
    """Base of the SDK's errors. One that escapes the handler becomes its error as ``str(e)``."""


class HandlerError(HearsayError):
    """Raise it to fail the event with exactly this message as the handler's error."""


class ReplyError(HearsayError):
    """A reply was refused (WIT ``reply-error``). ``kind`` is the WIT case name."""

    kind: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.kind}: {message}")


class NotAQuery(ReplyError):
    """The event being handled is not a query."""

    kind = "not-a-query"

    def __init__(self) -> None:
        super().__init__("the event being handled is not a query")


class AlreadyReplied(ReplyError):
    """This query was already answered (by :func:`reply` or a finished or open stream)."""

    kind = "already-replied"

    def __init__(self) -> None:
        super().__init__("this query was already answered")


class ReplyTooLarge(ReplyError):
    """The reply would exceed ``limit``, the bytes the asker can receive (1024 for a plain Serf
    node, which takes replies over UDP only)."""

    kind = "too-large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the reply exceeds the {limit} bytes the asker can receive")


class ReplyClosed(ReplyError):
    """The reply channel is gone (the query timed out, the asker went away); ``cause`` says why."""

    kind = "closed"

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


class EmitError(HearsayError):
    """An emitted user event was refused (WIT ``emit-error``). ``kind`` is the WIT case name."""

    kind: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.kind}: {message}")


class NotGranted(EmitError):
    """The handler's grant does not allow emitting events (``grants.emit``)."""

    kind = "not-granted"

    def __init__(self) -> None:
        super().__init__("this handler may not emit events (grants.emit is false)")


class EmitTooLarge(EmitError):
    """Name and payload exceed ``limit``, the user event size limit in bytes."""

    kind = "too-large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"name and payload exceed the user event limit of {limit} bytes")


class EmitRejected(EmitError):
    """The agent refused the event; ``cause`` says why (e.g. a reserved name)."""

    kind = "rejected"

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


class CommandError(HearsayError):
    """A granted command did not run (WIT ``command-error``), raised by
    :func:`hearsay.commands.run`. ``kind`` is the WIT case name, ``name`` the command's. A command
    that ran and failed is not an error: see :attr:`CommandOutput.status`."""

    kind: str = ""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{self.kind}: {message}")


class CommandNotGranted(CommandError):
    """No command of this name is granted to the handler (``grants.commands``)."""

    kind = "not-granted"

    def __init__(self, name: str) -> None:
        super().__init__(name, f"no command {name!r} is granted to this handler (grants.commands)")


class CommandFailed(CommandError):
    """The command could not be started (e.g. its program does not exist); ``cause`` says why."""

    kind = "failed"

    def __init__(self, name: str, cause: str) -> None:
        self.cause = cause
        super().__init__(name, f"command {name!r} could not be started: {cause}")


class KvError(HearsayError):
    """A key-value store operation failed (WIT ``kv-error``), raised by :mod:`hearsay.kv`.
    ``kind`` is the WIT case name."""

    kind: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.kind}: {message}")


class KvNotGranted(KvError):
    """The handler has no store (no ``grants.kv``)."""

    kind = "not-granted"

    def __init__(self) -> None:
        super().__init__("this handler has no key-value store (grants.kv)")


class KvQuotaExceeded(KvError):
    """The write would take the store past ``quota``, in bytes of keys and values; nothing was
    written."""

    kind = "quota-exceeded"

    def __init__(self, quota: int) -> None:
        self.quota = quota
        super().__init__(f"the write would take the store past its quota of {quota} bytes")


class KvBadKey(KvError):
    """The key is empty or longer than the host allows (1 KiB); ``length`` is its length in
    bytes."""

    kind = "bad-key"

    def __init__(self, length: int) -> None:
        self.length = length
        super().__init__(f"a key must have 1 to 1024 bytes, this one has {length}")


class KvStoreError(KvError):
    """The store itself failed; ``cause`` says why."""

    kind = "store"

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(cause)


class TagError(HearsayError):
    """A change of this node's tags was refused (WIT ``tag-error``), raised by
    :mod:`hearsay.tags`. ``kind`` is the WIT case name, ``name`` the tag's."""

    kind: str = ""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{self.kind}: {message}")


class TagNotGranted(TagError):
    """No pattern of the handler's ``grants.tags`` matches the tag's name."""

    kind = "not-granted"

    def __init__(self, name: str) -> None:
        super().__init__(name, f"tag {name!r} matches no pattern of grants.tags")


class TagRejected(TagError):
    """The agent refused the change; ``cause`` says why (e.g. the tags would exceed Serf's
    limit)."""

    kind = "rejected"

    def __init__(self, name: str, cause: str) -> None:
        self.cause = cause
        super().__init__(name, cause)


def _reply_error(e: object) -> ReplyError:
    if isinstance(e, _wit.ReplyError_NotAQuery):
        return NotAQuery()
    if isinstance(e, _wit.ReplyError_AlreadyReplied):
        return AlreadyReplied()
    if isinstance(e, _wit.ReplyError_TooLarge):
        return ReplyTooLarge(e.value)
    if isinstance(e, _wit.ReplyError_Closed):
        return ReplyClosed(e.value)
    return ReplyClosed(f"unknown reply error {e!r}")


def _emit_error(e: object) -> EmitError:
    if isinstance(e, _wit.EmitError_NotGranted):
        return NotGranted()
    if isinstance(e, _wit.EmitError_TooLarge):
        return EmitTooLarge(e.value)
    if isinstance(e, _wit.EmitError_Rejected):
        return EmitRejected(e.value)
    return EmitRejected(f"unknown emit error {e!r}")


# ---------------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------------


def reply(data: Data) -> None:
    """Answers the query being handled with ``data`` in one piece (a str is sent as UTF-8).

    Raises a :class:`ReplyError`: :class:`NotAQuery`, :class:`AlreadyReplied`,
    :class:`ReplyTooLarge` or :class:`ReplyClosed`.
    """
    try:
        _reply.respond(_bytes(data))
    except Err as e:
        raise _reply_error(e.value) from None


class ReplyStream:
    """A reply written in chunks, so a large reply is never held whole by guest or host. The
    asker receives the concatenation of the chunks once the stream is finished.

    Use it as a context manager: leaving the ``with`` block finishes the reply, an exception
    abandons it (the asker gets nothing from this node)::

        with hearsay.reply_stream() as out:
            for line in lines:
                out.write(line)
    """

    def __init__(self, raw: _reply.ReplyStream) -> None:
        self._raw: Optional[_reply.ReplyStream] = raw

    @property
    def closed(self) -> bool:
        """Whether the stream was finished or abandoned."""
        return self._raw is None

    def _open(self) -> _reply.ReplyStream:
        if self._raw is None:
            raise ValueError("the reply stream is already finished or abandoned")
        return self._raw

    def write(self, chunk: Data) -> None:
        """Appends ``chunk`` to the reply (a str is sent as UTF-8). Raises a :class:`ReplyError`
        (e.g. :class:`ReplyTooLarge`, :class:`ReplyClosed`)."""
        try:
            self._open().write(_bytes(chunk))
        except Err as e:
            raise _reply_error(e.value) from None

    def finish(self) -> None:
        """Completes the reply. Raises a :class:`ReplyError`."""
        raw = self._open()
        self._raw = None
        try:
            _reply.ReplyStream.finish(raw)
        except Err as e:
            raise _reply_error(e.value) from None

    def abandon(self) -> None:
        """Drops the reply unfinished: the asker gets nothing from this node. Does nothing when
        the stream is already closed."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.__exit__(None, None, None)

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._raw is None:
            return
        if exc_type is None:
            self.finish()
        else:
            self.abandon()


def reply_stream() -> ReplyStream:
    """Starts a streamed answer to the query being handled (see :class:`ReplyStream`). Raises
    :class:`NotAQuery` or :class:`AlreadyReplied`."""
    try:
        return ReplyStream(_reply.open_stream())
    except Err as e:
        raise _reply_error(e.value) from None


# ---------------------------------------------------------------------------------------------
# Cluster, emit
# ---------------------------------------------------------------------------------------------


def local_member() -> Member:
    """This node."""
    return _member(_cluster.local_member())


def members() -> list[Member]:
    """Every member this node knows, including itself and members that left or failed (until
    they are reaped)."""
    return [_member(m) for m in _cluster.members()]


def emit(name: str, payload: Data = b"", coalesce: bool = False) -> None:
    """Broadcasts a user event ``name`` with ``payload`` (Serf's ``serf event``).

    Needs the emit grant (``grants.emit = true``). Raises an :class:`EmitError`:
    :class:`NotGranted`, :class:`EmitTooLarge` or :class:`EmitRejected`.
    """
    try:
        _emit.emit(name, _bytes(payload), coalesce)
    except Err as e:
        raise _emit_error(e.value) from None


# ---------------------------------------------------------------------------------------------
# Commands (the functions are in hearsay.commands, hearsay.kv and hearsay.tags, imported below)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandOutput:
    """How a command run by :func:`hearsay.commands.run` ended."""

    status: Optional[int]
    """The exit status; None when a signal ended it."""
    signal: Optional[int]
    """The signal that ended it, if one did."""
    stdout: bytes
    """What it wrote to stdout, cut at the host's cap (64 KiB)."""
    stderr: bytes
    """What it wrote to stderr, cut at the same cap."""
    truncated: bool
    """Whether stdout or stderr was cut."""

    @property
    def success(self) -> bool:
        """Whether it exited with status 0."""
        return self.status == 0

    @property
    def stdout_text(self) -> str:
        """stdout as text (UTF-8; invalid bytes become U+FFFD)."""
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        """stderr as text (UTF-8; invalid bytes become U+FFFD)."""
        return self.stderr.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------


class Level(enum.IntEnum):
    """Log severity."""

    TRACE = 0
    """Step-by-step detail, normally not shown."""
    DEBUG = 1
    """Diagnostic detail."""
    INFO = 2
    """Normal operation."""
    WARN = 3
    """Something unexpected that the handler dealt with."""
    ERROR = 4
    """The handler could not do its job."""


_LEVEL = {
    Level.TRACE: _wit.Level.TRACE,
    Level.DEBUG: _wit.Level.DEBUG,
    Level.INFO: _wit.Level.INFO,
    Level.WARN: _wit.Level.WARN,
    Level.ERROR: _wit.Level.ERROR,
}


def log(level: Level, message: str) -> None:
    """Logs ``message`` into the agent's log at ``level``, tagged with the handler and the event.
    The agent escapes control characters and cuts long messages."""
    _log.log(_LEVEL[Level(level)], str(message))


def trace(message: str) -> None:
    """Logs at trace level."""
    log(Level.TRACE, message)


def debug(message: str) -> None:
    """Logs at debug level."""
    log(Level.DEBUG, message)


def info(message: str) -> None:
    """Logs at info level."""
    log(Level.INFO, message)


def warn(message: str) -> None:
    """Logs at warn level."""
    log(Level.WARN, message)


warning = warn
"""The same as :func:`warn` (the name Python's ``logging`` uses)."""


def error(message: str) -> None:
    """Logs at error level."""
    log(Level.ERROR, message)


# ---------------------------------------------------------------------------------------------
# Defining the handler
# ---------------------------------------------------------------------------------------------


class Handler:
    """Subclass it in ``app.py`` to define the handler. ``handle`` is called once per event with
    a fresh object; by default it calls ``on_query``, ``on_user_event``, ``on_member_event`` or
    ``on_tick``, which do nothing unless overridden. Override ``handle`` itself to see every event
    in one place."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _handler_classes.append(cls)

    def handle(self, event: Event) -> None:
        """Handles one event. An exception is the handler's error for this event."""
        if isinstance(event, Query):
            self.on_query(event)
        elif isinstance(event, UserEvent):
            self.on_user_event(event)
        elif isinstance(event, Tick):
            self.on_tick(event)
        else:
            self.on_member_event(event)

    def on_query(self, query: Query) -> None:
        """Called for a query; answer it with :func:`reply` or :func:`reply_stream`."""

    def on_user_event(self, event: UserEvent) -> None:
        """Called for a user event."""

    def on_member_event(self, event: MemberEvent) -> None:
        """Called for a member event (join, leave, failed, update, reap)."""

    def on_tick(self, tick: Tick) -> None:
        """Called when the handler's timer fires (``every:DURATION`` in its filter)."""


F = TypeVar("F", bound=Callable[[Event], None])

_handler_classes: list[type[Handler]] = []
_handler_functions: list[Callable[[Event], None]] = []


def handler(fn: F) -> F:
    """Decorator: makes ``fn(event)`` the handler (instead of a :class:`Handler` subclass)."""
    _handler_functions.append(fn)
    return fn


def _entry_point(module: str) -> Callable[[Event], None]:
    """The one handler ``module`` defined: a function or the most derived Handler subclass."""
    leaves = [
        c
        for c in _handler_classes
        if not any(o is not c and issubclass(o, c) for o in _handler_classes)
    ]
    found: list[object] = [*_handler_functions, *leaves]
    if not found:
        raise RuntimeError(
            f"{module}.py defines no handler: subclass hearsay.Handler "
            "or decorate a function with @hearsay.handler"
        )
    if len(found) > 1:
        names = ", ".join(getattr(f, "__qualname__", repr(f)) for f in found)
        raise RuntimeError(f"{module}.py defines more than one handler: {names}")
    if leaves:
        cls = leaves[0]
        return lambda event: cls().handle(event)
    return _handler_functions[0]


# The capability modules: hearsay.commands.run(...), hearsay.kv.get(...), hearsay.tags.set(...),
# hearsay.http.get(...).
from . import commands, http, kv, tags  # noqa: E402
