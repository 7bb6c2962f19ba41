"""sdk-probe in Python: see ../README.md."""

from __future__ import annotations

import hearsay
from hearsay import commands, http, kv, tags


def refused(e: hearsay.HearsayError) -> str:
    number = getattr(e, "quota", None)
    if number is None:
        number = getattr(e, "length", None)
    kind = getattr(e, "kind", "?")
    return f"refused:{kind}" if number is None else f"refused:{kind}({number})"


def on_kv(payload: str) -> str:
    op, _, rest = payload.partition(" ")
    key, _, value = rest.partition(" ")
    if op == "set":
        kv.set(key, value)
        return "ok"
    if op == "get":
        text = kv.get_text(key)
        return "none" if text is None else text
    if op == "del":
        return "true" if kv.delete(key) else "false"
    if op == "keys":
        return ",".join(kv.keys(key))
    raise hearsay.HandlerError(f"unknown op {op}")


def on_command(payload: str) -> str:
    name, newline, stdin = payload.partition("\n")
    out = commands.run(name, stdin if newline else None)
    status = "none" if out.status is None else out.status
    signal = "none" if out.signal is None else out.signal
    cut = "true" if out.truncated else "false"
    return f"status={status} signal={signal} cut={cut} out={out.stdout_text} err={out.stderr_text}"


def on_tag(payload: str) -> str:
    op, _, rest = payload.partition(" ")
    name, _, value = rest.partition(" ")
    if op == "set":
        tags.set(name, value)
    else:
        tags.delete(name)
    return "ok"


def on_http(payload: str) -> str:
    line, newline, body = payload.partition("\n")
    method, _, url = line.partition(" ")
    r = http.request(method, url, body=body if newline else b"")
    return f"status={r.status} body={r.text}"


MODES = {"kv": on_kv, "command": on_command, "tag": on_tag, "http": on_http}


class Probe(hearsay.Handler):
    def on_query(self, query: hearsay.Query) -> None:
        mode = MODES.get(query.name)
        if mode is None:
            raise hearsay.HandlerError(f"unknown query {query.name}")
        try:
            answer = mode(query.text)
        except (hearsay.CommandError, hearsay.KvError, hearsay.TagError, http.HttpError) as e:
            answer = refused(e)
        hearsay.reply(answer)

    def on_tick(self, tick: hearsay.Tick) -> None:
        hearsay.kv.set("tick", f"{tick.period_ms}/{tick.count}")
