/*
 * hearsay.h: write a hearsay event handler in C.
 *
 * A handler is a WebAssembly component implementing the `hearsay:handler` world (wit/handler.wit).
 * build.sh generates the C bindings from the WIT (handler.h, included below) and compiles your
 * sources with this header's helpers (hearsay.c) into a component. You write one function:
 *
 *     #include "hearsay.h"
 *
 *     int hearsay_handle(const hearsay_event_t *event) {
 *         if (event->tag != HEARSAY_EVENT_QUERY)
 *             return HEARSAY_OK;
 *         const hearsay_query_t *q = &event->val.query;
 *         hearsay_err_t err = hearsay_reply(q->payload.ptr, q->payload.len);
 *         if (err != HEARSAY_OK)
 *             return hearsay_fail("echo: %s", hearsay_strerror(err));
 *         return HEARSAY_OK;
 *     }
 *
 * It is called once per event, each time in a fresh instance: nothing survives between events
 * (globals start from their initial values every time). Returning HEARSAY_OK (0) is success;
 * returning anything else fails the event, and the agent logs the message given to hearsay_fail
 * (and counts a handler error).
 *
 * Memory: the event belongs to the SDK and is freed after hearsay_handle returns; do not free it or
 * keep pointers into it. What a hearsay_* function returns in a struct (hearsay_members,
 * hearsay_local_member, hearsay_strdup) is yours to free with the function named in its comment.
 * Strings (hearsay_string_t) and payloads (hearsay_bytes_t) are pointer + length, NOT terminated by
 * NUL: print them with "%.*s" and HEARSAY_STR(s), compare with hearsay_str_eq, or copy them with
 * hearsay_strdup.
 *
 * Everything of the generated bindings (hearsay_handler_* and handler_* names) stays available for
 * what these helpers do not cover.
 */
#ifndef HEARSAY_H
#define HEARSAY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handler.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define HEARSAY_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define HEARSAY_PRINTF(fmt, args)
#endif

/* ---- Types ------------------------------------------------------------------------------------ */

/* A UTF-8 string: `ptr` and `len` bytes, no terminating NUL. */
typedef handler_string_t hearsay_string_t;
/* Bytes (a payload): `ptr` and `len`. */
typedef handler_list_u8_t hearsay_bytes_t;
/* One tag of a member: key `f0`, value `f1`. */
typedef handler_tuple2_string_string_t hearsay_tag_t;

/* What happened: `tag` says which, `val` holds it (see HEARSAY_EVENT_*). */
typedef hearsay_handler_types_event_t hearsay_event_t;
/* A query (`val.query` of a HEARSAY_EVENT_QUERY): id, name, payload, ltime, source_node. */
typedef hearsay_handler_types_query_t hearsay_query_t;
/* A user event (`val.user` of a HEARSAY_EVENT_USER): name, payload, ltime, coalesce. */
typedef hearsay_handler_types_user_event_t hearsay_user_event_t;
/* One cluster member: name, addr (text), port, tags (`ptr`/`len` of hearsay_tag_t), status,
 * rtt_micros (`is_some`, `val`). */
typedef hearsay_handler_types_member_t hearsay_member_t;
/* A list of members: `ptr` and `len`. */
typedef hearsay_handler_types_list_member_t hearsay_members_t;
/* A member's state (HEARSAY_STATUS_*). */
typedef hearsay_handler_types_member_status_t hearsay_status_t;
/* Log severity (HEARSAY_LEVEL_*). */
typedef hearsay_handler_types_level_t hearsay_level_t;

/* Event kinds: the `tag` of a hearsay_event_t, and the member of `val` that holds the event. */
#define HEARSAY_EVENT_MEMBER_JOIN HEARSAY_HANDLER_TYPES_EVENT_MEMBER_JOIN     /* val.member_join */
#define HEARSAY_EVENT_MEMBER_LEAVE HEARSAY_HANDLER_TYPES_EVENT_MEMBER_LEAVE   /* val.member_leave */
#define HEARSAY_EVENT_MEMBER_FAILED HEARSAY_HANDLER_TYPES_EVENT_MEMBER_FAILED /* val.member_failed */
#define HEARSAY_EVENT_MEMBER_UPDATE HEARSAY_HANDLER_TYPES_EVENT_MEMBER_UPDATE /* val.member_update */
#define HEARSAY_EVENT_MEMBER_REAP HEARSAY_HANDLER_TYPES_EVENT_MEMBER_REAP     /* val.member_reap */
#define HEARSAY_EVENT_USER HEARSAY_HANDLER_TYPES_EVENT_USER                   /* val.user */
#define HEARSAY_EVENT_QUERY HEARSAY_HANDLER_TYPES_EVENT_QUERY                 /* val.query */

/* Member states. */
#define HEARSAY_STATUS_NONE HEARSAY_HANDLER_TYPES_MEMBER_STATUS_NONE
#define HEARSAY_STATUS_ALIVE HEARSAY_HANDLER_TYPES_MEMBER_STATUS_ALIVE
#define HEARSAY_STATUS_LEAVING HEARSAY_HANDLER_TYPES_MEMBER_STATUS_LEAVING
#define HEARSAY_STATUS_LEFT HEARSAY_HANDLER_TYPES_MEMBER_STATUS_LEFT
#define HEARSAY_STATUS_FAILED HEARSAY_HANDLER_TYPES_MEMBER_STATUS_FAILED

/* Log levels. */
#define HEARSAY_LEVEL_TRACE HEARSAY_HANDLER_TYPES_LEVEL_TRACE
#define HEARSAY_LEVEL_DEBUG HEARSAY_HANDLER_TYPES_LEVEL_DEBUG
#define HEARSAY_LEVEL_INFO HEARSAY_HANDLER_TYPES_LEVEL_INFO
#define HEARSAY_LEVEL_WARN HEARSAY_HANDLER_TYPES_LEVEL_WARN
#define HEARSAY_LEVEL_ERROR HEARSAY_HANDLER_TYPES_LEVEL_ERROR

/* What the reply and emit functions return. Each error is a mistake the handler can deal with. */
typedef enum hearsay_err {
    HEARSAY_OK = 0,
    /* reply: the event being handled is not a query. */
    HEARSAY_ERR_NOT_A_QUERY,
    /* reply: the query was already answered (or a stream is open for it). */
    HEARSAY_ERR_ALREADY_REPLIED,
    /* reply: over what the asker can receive; emit: over the user event size limit.
     * hearsay_error_limit() gives the limit in bytes. */
    HEARSAY_ERR_TOO_LARGE,
    /* reply: the reply channel is gone (the query timed out, the asker went away). */
    HEARSAY_ERR_CLOSED,
    /* emit: the handler's grant does not allow emitting events. */
    HEARSAY_ERR_NOT_GRANTED,
    /* emit: the agent refused the event (e.g. a reserved name). */
    HEARSAY_ERR_REJECTED,
} hearsay_err_t;

/* ---- The handler ------------------------------------------------------------------------------ */

/* Failure, as returned by hearsay_fail (any non-zero return of hearsay_handle fails the event). */
#define HEARSAY_FAILED (-1)

/*
 * YOU implement this: handles one event. Return HEARSAY_OK (0) on success, or
 * `return hearsay_fail("...", ...);` to fail the event with a message. `event` is only borrowed.
 */
int hearsay_handle(const hearsay_event_t *event);

/*
 * Sets the message the event fails with (printf-style) and returns HEARSAY_FAILED, so that
 * `return hearsay_fail("census: bad payload %.*s", HEARSAY_STR(p));` reads naturally. A later call
 * replaces the message. A non-zero return without a message fails with "handler returned N".
 */
int hearsay_fail(const char *fmt, ...) HEARSAY_PRINTF(1, 2);

/* ---- Answering a query ------------------------------------------------------------------------ */

/* Answers the query being handled with `len` bytes at `data`, in one piece. */
hearsay_err_t hearsay_reply(const void *data, size_t len);
/* Answers with the NUL-terminated string `text` (without the NUL). */
hearsay_err_t hearsay_reply_str(const char *text);
/* Answers with printf-style formatted text. */
hearsay_err_t hearsay_replyf(const char *fmt, ...) HEARSAY_PRINTF(1, 2);

/*
 * A streamed answer, so that a large reply is never held whole: hearsay_stream_open, any number of
 * hearsay_stream_write / hearsay_stream_printf, then hearsay_stream_finish (the asker gets the
 * concatenation). hearsay_stream_abandon drops it unanswered (as does returning without finishing;
 * the instance is gone after the event).
 */
typedef struct hearsay_stream {
    hearsay_handler_reply_own_reply_stream_t handle;
    bool open;
} hearsay_stream_t;

hearsay_err_t hearsay_stream_open(hearsay_stream_t *stream);
hearsay_err_t hearsay_stream_write(hearsay_stream_t *stream, const void *data, size_t len);
hearsay_err_t hearsay_stream_printf(hearsay_stream_t *stream, const char *fmt, ...)
    HEARSAY_PRINTF(2, 3);
/* Completes the reply. The stream is consumed, whether this succeeds or not. */
hearsay_err_t hearsay_stream_finish(hearsay_stream_t *stream);
/* Drops an open stream without answering. Does nothing on a finished or never opened stream. */
void hearsay_stream_abandon(hearsay_stream_t *stream);

/* ---- Emitting user events (needs `grants.emit = true`) ---------------------------------------- */

/* Broadcasts the user event `name` with `len` bytes of payload at `payload` (Serf's `serf event`). */
hearsay_err_t hearsay_emit(const char *name, const void *payload, size_t len, bool coalesce);

/* ---- Errors ----------------------------------------------------------------------------------- */

/*
 * A sentence describing `err`. When `err` is the error the last failing reply/emit call returned,
 * it has that call's details ("the reply exceeds the asker's limit of 1024 bytes", "the reply
 * channel is closed: <cause>"). The text stays valid until the next failing call.
 */
const char *hearsay_strerror(hearsay_err_t err);
/* The limit in bytes of the last HEARSAY_ERR_TOO_LARGE, 0 if there was none. */
uint64_t hearsay_error_limit(void);

/* ---- Logging into the agent's log (tagged with the handler and the event) --------------------- */

void hearsay_log(hearsay_level_t level, const char *fmt, ...) HEARSAY_PRINTF(2, 3);
void hearsay_vlog(hearsay_level_t level, const char *fmt, va_list args) HEARSAY_PRINTF(2, 0);
void hearsay_log_trace(const char *fmt, ...) HEARSAY_PRINTF(1, 2);
void hearsay_log_debug(const char *fmt, ...) HEARSAY_PRINTF(1, 2);
void hearsay_log_info(const char *fmt, ...) HEARSAY_PRINTF(1, 2);
void hearsay_log_warn(const char *fmt, ...) HEARSAY_PRINTF(1, 2);
void hearsay_log_error(const char *fmt, ...) HEARSAY_PRINTF(1, 2);

/* ---- The cluster ------------------------------------------------------------------------------ */

/* Every member this node knows, including itself and members that left or failed (until reaped).
 * Free the list with hearsay_members_free. */
hearsay_members_t hearsay_members(void);
void hearsay_members_free(hearsay_members_t *members);

/* This node. Free it with hearsay_member_free. */
hearsay_member_t hearsay_local_member(void);
void hearsay_member_free(hearsay_member_t *member);

/* Loops `m` (a const hearsay_member_t *) over a hearsay_members_t *:
 *     hearsay_members_t all = hearsay_members();
 *     hearsay_foreach_member(m, &all) { ... m->name ... }
 *     hearsay_members_free(&all);                                                                */
#define hearsay_foreach_member(m, list)                                                            \
    for (const hearsay_member_t *m = (list)->ptr; m < (list)->ptr + (list)->len; m++)

/* The value of tag `key` of `member`, or NULL when it has no such tag. */
const hearsay_string_t *hearsay_member_tag(const hearsay_member_t *member, const char *key);
/* The same with a key of `key_len` bytes (not NUL-terminated). */
const hearsay_string_t *hearsay_member_tag_n(const hearsay_member_t *member, const char *key,
                                             size_t key_len);

/* The names of `members` joined by `separator` ("a, b, c" for ", "), NUL-terminated; free() it. */
char *hearsay_member_names(const hearsay_members_t *members, const char *separator);

/* "none", "alive", "leaving", "left" or "failed". */
const char *hearsay_status_str(hearsay_status_t status);

/* ---- Events ----------------------------------------------------------------------------------- */

/* The event's kind as in Serf's filters: "member-join", "member-leave", "member-failed",
 * "member-update", "member-reap", "user" or "query". */
const char *hearsay_event_kind(const hearsay_event_t *event);
/* The members of a member event, NULL for a user event or a query. */
const hearsay_members_t *hearsay_event_members(const hearsay_event_t *event);

/* ---- Strings ---------------------------------------------------------------------------------- */

/* Expands to the two printf arguments of "%.*s" for a hearsay_string_t or hearsay_bytes_t:
 *     hearsay_log_info("query %.*s", HEARSAY_STR(q->name));
 * (printing stops at a NUL byte in the data). */
#define HEARSAY_STR(s) (int)(s).len, (const char *)(s).ptr

/* A hearsay_string_t viewing the NUL-terminated `text` (no copy: do not free it). */
hearsay_string_t hearsay_string(const char *text);
/* Whether `s` holds exactly the NUL-terminated `text`. */
bool hearsay_str_eq(hearsay_string_t s, const char *text);
/* A NUL-terminated copy of `len` bytes at `data` (a string's or payload's ptr/len) for functions
 * that want C strings; free() it. */
char *hearsay_strdup(const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* HEARSAY_H */
