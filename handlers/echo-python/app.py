"""echo: replies to every query with its payload, and logs user and member events."""

import hearsay


class Echo(hearsay.Handler):
    def on_query(self, query: hearsay.Query) -> None:
        # A refused reply (not-a-query, too-large, ...) raises hearsay.ReplyError, which becomes
        # the handler's error string.
        hearsay.reply(query.payload)

    def on_user_event(self, event: hearsay.UserEvent) -> None:
        hearsay.info(f"user event {event.name} at ltime {event.ltime}: {event.text}")

    def on_member_event(self, event: hearsay.MemberEvent) -> None:
        names = ", ".join(m.name for m in event.members)
        hearsay.info(f"{event.kind}: {names}")
