/*
 * {{name}}: a hearsay event handler written in C.
 *
 * The agent calls hearsay_handle once per event, each time in a fresh instance of this component:
 * nothing (no global, no malloc'd memory) survives from one event to the next. This starter answers
 * every query with its payload and logs every other event. Build it with ./build.sh (it makes
 * {{name}}.wasm); hearsay.h lists every helper.
 */
#include <stdlib.h>

#include "hearsay.h"

/*
 * Handles one event. Return HEARSAY_OK when all went well; to fail the event, return
 * hearsay_fail("message", ...): the agent logs the message and counts a handler error. The event is
 * only lent to you: it is freed when this function returns.
 */
int hearsay_handle(const hearsay_event_t *event) {
    switch (event->tag) {
    case HEARSAY_EVENT_QUERY: {
        /* `hearsay query {{name}} PAYLOAD`: answer it (once) with the same payload. Strings and
         * payloads are pointer + length, not NUL-terminated: print them with "%.*s", HEARSAY_STR. */
        const hearsay_query_t *q = &event->val.query;
        hearsay_log_debug("query %.*s from %.*s", HEARSAY_STR(q->name), HEARSAY_STR(q->source_node));
        hearsay_err_t err = hearsay_reply(q->payload.ptr, q->payload.len);
        if (err != HEARSAY_OK) {
            /* Not a query, already answered, too large for the asker, or the asker is gone. */
            return hearsay_fail("{{name}}: %s", hearsay_strerror(err));
        }
        return HEARSAY_OK;
    }
    case HEARSAY_EVENT_USER: {
        /* `hearsay event NAME PAYLOAD`. */
        const hearsay_user_event_t *u = &event->val.user;
        hearsay_log_info("user event %.*s at ltime %llu: %.*s", HEARSAY_STR(u->name),
                         (unsigned long long)u->ltime, HEARSAY_STR(u->payload));
        return HEARSAY_OK;
    }
    case HEARSAY_EVENT_TICK: {
        /* A timer: the handler's filter has `every:DURATION` (`events = "every:10s"`). With grants,
         * it could keep state with hearsay_kv_*, run approved commands with hearsay_command_run or
         * set this node's tags with hearsay_tag_set (see hearsay.h). */
        const hearsay_tick_t *t = &event->val.tick;
        hearsay_log_info("tick %llu (every %llu ms)", (unsigned long long)t->count,
                         (unsigned long long)t->period_ms);
        return HEARSAY_OK;
    }
    default: {
        /* A member event (member-join, -leave, -failed, -update, -reap) with the members concerned.
         * hearsay_members() gives every member this node knows. */
        char *names = hearsay_member_names(hearsay_event_members(event), ", ");
        hearsay_log_info("%s: %s", hearsay_event_kind(event), names);
        free(names);
        return HEARSAY_OK;
    }
    }
}
