"""{{name}}: a hearsay event handler.

The agent calls the handler below once per event that its filter admits (`-handler
query:{{name}}={{name}}.wasm` admits the query `{{name}}`), each time in a fresh instance: nothing
survives from one event to the next. Build with `./build.sh`, which writes `{{name}}.wasm`.

Module-level code (imports, constants) runs once, when ./build.sh builds the component, so it
costs nothing per event; it cannot ask the agent anything (`hearsay.members()` and the like work
only inside the handler).
"""

import hearsay


class Handler(hearsay.Handler):
    """One object is made per event, then `handle` calls the `on_*` method for the event's kind.
    Override `handle(self, event)` instead to see every event in one place."""

    def on_query(self, query: hearsay.Query) -> None:
        # `hearsay query {{name}} hi` (or `serf query {{name}} hi`): answer with the payload.
        # `query.text` is the payload as text; reply() takes bytes or str. A refused reply
        # (e.g. too large for a plain Serf asker) raises a hearsay.ReplyError, which becomes the
        # handler's error, as does any other exception that escapes.
        hearsay.reply(query.payload)

    def on_user_event(self, event: hearsay.UserEvent) -> None:
        # `hearsay event deploy v1`: log it. Log lines land in the agent's log, tagged with the
        # handler and the event (print() output is not shown).
        hearsay.info(f"user event {event.name} at ltime {event.ltime}: {event.text}")

    def on_member_event(self, event: hearsay.MemberEvent) -> None:
        # member-join, member-leave, member-failed, member-update, member-reap.
        names = ", ".join(m.name for m in event.members)
        hearsay.info(f"{event.kind}: {names}")

        # Also at hand: hearsay.members(), hearsay.local_member(), m.tag("role"), m.address,
        # and `with hearsay.reply_stream() as out: out.write(chunk)` for large replies. With a
        # grant in the agent's config: hearsay.emit("name", b"payload") (`grants.emit = true`),
        # hearsay.commands.run("reload") (`grants.commands`), hearsay.kv.get/set/delete/keys (a
        # store that survives events, `grants.kv`), hearsay.tags.set/delete (`grants.tags`), and
        # an `on_tick(self, tick)` method for timers (`events = "every:10s"`).
