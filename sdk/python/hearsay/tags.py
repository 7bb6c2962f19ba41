"""This node's own tags (``grants.tags = ["service:*"]``).

Gossip carries a change to every member, Serf's included. Only tags whose name matches a granted
pattern can be changed::

    hearsay.tags.set("service:web", "8080")
    hearsay.tags.delete("service:web")

:func:`set` and :func:`delete` raise a :class:`TagError`: :class:`TagNotGranted` or
:class:`TagRejected`.
"""

from __future__ import annotations

from typing import Callable, Optional

from componentize_py_types import Err
from wit_world.imports import tags as _tags

import hearsay
from hearsay import TagError, TagNotGranted, TagRejected

__all__ = ["TagError", "TagNotGranted", "TagRejected", "delete", "get", "set"]


def _call(name: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Err as e:
        if isinstance(e.value, _tags.TagError_NotGranted):
            raise TagNotGranted(name) from None
        if isinstance(e.value, _tags.TagError_Rejected):
            raise TagRejected(name, e.value.value) from None
        raise TagRejected(name, f"unknown tag error {e.value!r}") from None


def set(name: str, value: str) -> None:  # noqa: A001  (the verb, as in the WIT)
    """Sets this node's tag ``name`` to ``value``."""
    _call(name, lambda: _tags.set(name, value))


def delete(name: str) -> None:
    """Removes this node's tag ``name`` (nothing happens when it is not set)."""
    _call(name, lambda: _tags.delete(name))


def get(name: str, default: Optional[str] = None) -> Optional[str]:
    """This node's tag ``name`` as the cluster last saw it, or ``default`` when it has none."""
    return hearsay.local_member().tag(name, default)
