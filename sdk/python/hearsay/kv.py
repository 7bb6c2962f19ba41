"""The handler's persistent key-value store (``grants.kv = "16MiB"``).

One store per handler, under the agent's data directory: it survives events, reloads and agent
restarts. The quota counts the bytes of keys and values. Keys are non-empty strings of at most
1 KiB; values are bytes (a str is stored as UTF-8)::

    seen = int(hearsay.kv.get_text("seen") or 0) + 1
    hearsay.kv.set("seen", str(seen))
    for key in hearsay.kv.keys("host/"):
        ...

Every function raises a :class:`KvError`: :class:`KvNotGranted` (no ``grants.kv``),
:class:`KvQuotaExceeded`, :class:`KvBadKey` or :class:`KvStoreError`.
"""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

from componentize_py_types import Err
from wit_world.imports import kv as _kv

from hearsay import (
    Data,
    KvBadKey,
    KvError,
    KvNotGranted,
    KvQuotaExceeded,
    KvStoreError,
    _bytes,
)

__all__ = [
    "KvBadKey",
    "KvError",
    "KvNotGranted",
    "KvQuotaExceeded",
    "KvStoreError",
    "delete",
    "get",
    "get_text",
    "keys",
    "set",
]

T = TypeVar("T")


def _error(e: object) -> KvError:
    if isinstance(e, _kv.KvError_NotGranted):
        return KvNotGranted()
    if isinstance(e, _kv.KvError_QuotaExceeded):
        return KvQuotaExceeded(e.value)
    if isinstance(e, _kv.KvError_BadKey):
        return KvBadKey(e.value)
    if isinstance(e, _kv.KvError_Store):
        return KvStoreError(e.value)
    return KvStoreError(f"unknown store error {e!r}")


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except Err as e:
        raise _error(e.value) from None


def get(key: str) -> Optional[bytes]:
    """The value of ``key``, or None when it is not set."""
    return _call(lambda: _kv.get(key))


def get_text(key: str) -> Optional[str]:
    """The value of ``key`` as text (UTF-8; invalid bytes become U+FFFD), or None when it is not
    set."""
    value = get(key)
    return None if value is None else value.decode("utf-8", errors="replace")


def set(key: str, value: Data) -> None:  # noqa: A001  (the store's verb, as in the WIT)
    """Sets ``key`` to ``value`` (bytes, or str stored as UTF-8), durably, before returning."""
    data = _bytes(value)
    _call(lambda: _kv.set(key, data))


def delete(key: str) -> bool:
    """Removes ``key``; whether it was set."""
    return _call(lambda: _kv.delete(key))


def keys(prefix: str = "") -> list[str]:
    """The keys that begin with ``prefix``, in order ("" lists them all)."""
    return _call(lambda: _kv.keys(prefix))
