/*
 * echo: replies to every query with its payload, and logs user and member events.
 * The C twin of handlers/echo (Rust). Build: sdk/c/build.sh handlers/echo-c OUT.wasm
 */
#include <stdlib.h>

#include "hearsay.h"

int hearsay_handle(const hearsay_event_t *event) {
    switch (event->tag) {
    case HEARSAY_EVENT_QUERY: {
        const hearsay_query_t *q = &event->val.query;
        hearsay_err_t err = hearsay_reply(q->payload.ptr, q->payload.len);
        if (err != HEARSAY_OK) {
            return hearsay_fail("echo: %s", hearsay_strerror(err));
        }
        return HEARSAY_OK;
    }
    case HEARSAY_EVENT_USER: {
        const hearsay_user_event_t *u = &event->val.user;
        hearsay_log_info("user event %.*s at ltime %llu: %.*s", HEARSAY_STR(u->name),
                         (unsigned long long)u->ltime, HEARSAY_STR(u->payload));
        return HEARSAY_OK;
    }
    default: {
        /* A member event: its kind and the members concerned. */
        char *names = hearsay_member_names(hearsay_event_members(event), ", ");
        hearsay_log_info("%s: %s", hearsay_event_kind(event), names);
        free(names);
        return HEARSAY_OK;
    }
    }
}
