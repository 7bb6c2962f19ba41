"""The component's export: componentize-py builds this module (``build.sh`` names it as the app).

It imports the project's ``app`` module, which defines the handler, and exports
``handle: func(event) -> result<_, string>`` over it. Everything at module level here and in
``app`` runs once, at build time; ``handle`` runs once per event, in a fresh instance.
"""

from __future__ import annotations

import os
import traceback

import wit_world
from componentize_py_types import Err
from wit_world.imports import hearsay_handler_types as _wit

import hearsay

import app  # type: ignore[import-not-found, unused-ignore]  # noqa: F401  (defines the handler)

_handle = hearsay._entry_point("app")
_SDK_DIR = os.path.dirname(hearsay.__file__) + os.sep


def _error_text(e: BaseException) -> str:
    """The handler's error string for an exception that escaped it."""
    if isinstance(e, hearsay.HearsayError):
        return str(e)
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    frames = traceback.extract_tb(e.__traceback__)
    # Where it went wrong: the innermost frame outside the SDK (the SDK's own when none is).
    ours = [f for f in frames if not f.filename.startswith(_SDK_DIR)] or frames
    if ours:
        at = ours[-1]
        text += f" (at {os.path.basename(at.filename)}:{at.lineno} in {at.name})"
    return text


class WitWorld(wit_world.WitWorld):
    def handle(self, event: _wit.Event) -> None:
        try:
            _handle(hearsay._event(event))
        except BaseException as e:  # every failure is the handler's error, never a trap
            if not isinstance(e, hearsay.HearsayError):
                try:
                    hearsay.debug("".join(traceback.format_exception(type(e), e, e.__traceback__)))
                except BaseException:
                    pass
            raise Err(_error_text(e)) from None
