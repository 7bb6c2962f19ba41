"""Running the commands the operator approved (``grants.commands = { reload = [...] }``).

The operator fixes each command's whole argv; the handler names the command and may give its
standard input::

    out = hearsay.commands.run("reload")
    if not out.success:
        hearsay.warn(f"reload failed ({out.status}): {out.stderr_text}")

A command runs with an empty environment, no shell, ``/`` as its working directory, and is killed
(with everything it started) at the event's deadline.
"""

from __future__ import annotations

from typing import Optional

from componentize_py_types import Err
from wit_world.imports import commands as _commands

from hearsay import CommandError, CommandFailed, CommandNotGranted, CommandOutput, Data, _bytes

__all__ = ["CommandError", "CommandFailed", "CommandNotGranted", "Output", "run"]

Output = CommandOutput
"""How a command ended: :class:`hearsay.CommandOutput`."""


def run(name: str, stdin: Optional[Data] = None) -> CommandOutput:
    """Runs the granted command ``name`` with ``stdin`` (bytes, or str sent as UTF-8; None: empty)
    on its standard input, waits for it to end and returns how it ended. A non-zero exit is not
    an exception: look at :attr:`CommandOutput.status` (or ``.success``).

    Raises a :class:`CommandError`: :class:`CommandNotGranted` when no command ``name`` is granted,
    :class:`CommandFailed` when it could not be started.
    """
    data = None if stdin is None else _bytes(stdin)
    try:
        out = _commands.run(name, data)
    except Err as e:
        if isinstance(e.value, _commands.CommandError_NotGranted):
            raise CommandNotGranted(name) from None
        if isinstance(e.value, _commands.CommandError_Failed):
            raise CommandFailed(name, e.value.value) from None
        raise CommandFailed(name, f"unknown command error {e.value!r}") from None
    return CommandOutput(out.status, out.signal, out.stdout, out.stderr, out.truncated)
