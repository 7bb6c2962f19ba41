/*
 * census: answers `query:census` with how many members this node knows in each state, one
 * `state=N` line each, then the total:
 *
 *     alive=3
 *     leaving=0
 *     left=1
 *     failed=0
 *     none=0
 *     total=4
 *
 * An empty payload counts every member (including those that left or failed and are not reaped
 * yet); a payload KEY=VALUE counts only the members whose tag KEY is VALUE (`hearsay query census
 * role=web`). Any other payload fails the query with "census: payload must be KEY=VALUE, got ...".
 * Other events are ignored. Needs no grant.
 *
 * Build: sdk/c/build.sh handlers/census-c OUT.wasm
 */
#include <string.h>

#include "hearsay.h"

int hearsay_handle(const hearsay_event_t *event) {
    if (event->tag != HEARSAY_EVENT_QUERY) {
        return HEARSAY_OK;
    }
    const hearsay_bytes_t *payload = &event->val.query.payload;

    /* The tag filter: KEY=VALUE (split at the first '='), or none for an empty payload. */
    bool filter = payload->len > 0;
    const char *key = NULL, *value = NULL;
    size_t key_len = 0, value_len = 0;
    if (filter) {
        const char *text = (const char *)payload->ptr;
        const char *eq = memchr(text, '=', payload->len);
        if (eq == NULL || eq == text) {
            return hearsay_fail("census: payload must be KEY=VALUE, got %.*s",
                                HEARSAY_STR(*payload));
        }
        key = text;
        key_len = (size_t)(eq - text);
        value = eq + 1;
        value_len = payload->len - key_len - 1;
    }

    /* Counts by status, indexed by HEARSAY_STATUS_*. */
    size_t count[HEARSAY_STATUS_FAILED + 1] = {0};
    size_t total = 0;
    hearsay_members_t members = hearsay_members();
    hearsay_foreach_member(m, &members) {
        if (filter) {
            const hearsay_string_t *tag = hearsay_member_tag_n(m, key, key_len);
            if (tag == NULL || tag->len != value_len ||
                (value_len > 0 && memcmp(tag->ptr, value, value_len) != 0)) {
                continue;
            }
        }
        if (m->status <= HEARSAY_STATUS_FAILED) {
            count[m->status]++;
        }
        total++;
    }
    hearsay_members_free(&members);

    hearsay_err_t err = hearsay_replyf(
        "alive=%zu\nleaving=%zu\nleft=%zu\nfailed=%zu\nnone=%zu\ntotal=%zu\n",
        count[HEARSAY_STATUS_ALIVE], count[HEARSAY_STATUS_LEAVING], count[HEARSAY_STATUS_LEFT],
        count[HEARSAY_STATUS_FAILED], count[HEARSAY_STATUS_NONE], total);
    if (err != HEARSAY_OK) {
        return hearsay_fail("census: %s", hearsay_strerror(err));
    }
    return HEARSAY_OK;
}
