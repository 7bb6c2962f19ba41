/*
 * hearsay.h: write a hearsay event handler in C.
 *
 * A handler is a WebAssembly component implementing the `hearsay:handler` world (wit/handler.wit).
 * build.sh generates the C bindings (handler.h, included below) for the world handler-with-http
 * (wit/handler-http.wit: that world plus wasi:http's outgoing-handler, which a component imports
 * only when it sends HTTP requests) and compiles your sources with this header's helpers
 * (hearsay.c) into a component. You write one function:
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
 * hearsay_local_member, hearsay_strdup, hearsay_command_run, hearsay_kv_get, hearsay_kv_keys,
 * hearsay_http_request) is yours to free with the function named in its comment.
 * Strings (hearsay_string_t) and payloads (hearsay_bytes_t) are pointer + length, NOT terminated by
 * NUL: print them with "%.*s" and HEARSAY_STR(s), compare with hearsay_str_eq, or copy them with
 * hearsay_strdup.
 *
 * Everything beyond the event needs a grant from the operator, named in the handler's [[handler]]
 * block; without one the call returns HEARSAY_ERR_NOT_GRANTED and nothing happens: files,
 * environment, real clocks, hearsay_emit, hearsay_command_run (operator-approved commands),
 * hearsay_kv_* (a persistent key-value store), hearsay_tag_* (this node's tags), timers
 * (`events = "every:10s"` delivers HEARSAY_EVENT_TICK events) and hearsay_http_* (outbound HTTP
 * to the URLs the operator allows; a request off the list returns HEARSAY_ERR_DENIED instead).
 *
 * Everything of the generated bindings (hearsay_handler_*, handler_* and wasi_http_* names) stays
 * available for what these helpers do not cover.
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
/* A timer fired (`val.tick` of a HEARSAY_EVENT_TICK): period_ms (the timer's period), count (how
 * many times it fired since the handler was loaded, from 1; ticks that come while the handler is
 * busy are skipped, not queued). */
typedef hearsay_handler_types_tick_t hearsay_tick_t;
/* One cluster member: name, addr (text), port, tags (`ptr`/`len` of hearsay_tag_t), status,
 * rtt_micros (`is_some`, `val`). */
typedef hearsay_handler_types_member_t hearsay_member_t;
/* A list of members: `ptr` and `len`. */
typedef hearsay_handler_types_list_member_t hearsay_members_t;
/* A member's state (HEARSAY_STATUS_*). */
typedef hearsay_handler_types_member_status_t hearsay_status_t;
/* Log severity (HEARSAY_LEVEL_*). */
typedef hearsay_handler_types_level_t hearsay_level_t;
/* A list of strings (the keys of hearsay_kv_keys): `ptr` and `len` of hearsay_string_t. */
typedef handler_list_string_t hearsay_strings_t;
/* How a command ended (hearsay_command_run): status and signal (`is_some`, `val`: the exit status,
 * none when a signal ended it; the signal, if one did), stdout_ and stderr_ (hearsay_bytes_t, cut at
 * the host's cap of 64 KiB; the trailing _ because stdio.h makes stdout and stderr macros),
 * truncated (whether either was cut). */
typedef hearsay_handler_commands_output_t hearsay_command_output_t;

/* Event kinds: the `tag` of a hearsay_event_t, and the member of `val` that holds the event. */
#define HEARSAY_EVENT_MEMBER_JOIN HEARSAY_HANDLER_TYPES_EVENT_MEMBER_JOIN     /* val.member_join */
#define HEARSAY_EVENT_MEMBER_LEAVE HEARSAY_HANDLER_TYPES_EVENT_MEMBER_LEAVE   /* val.member_leave */
#define HEARSAY_EVENT_MEMBER_FAILED HEARSAY_HANDLER_TYPES_EVENT_MEMBER_FAILED /* val.member_failed */
#define HEARSAY_EVENT_MEMBER_UPDATE HEARSAY_HANDLER_TYPES_EVENT_MEMBER_UPDATE /* val.member_update */
#define HEARSAY_EVENT_MEMBER_REAP HEARSAY_HANDLER_TYPES_EVENT_MEMBER_REAP     /* val.member_reap */
#define HEARSAY_EVENT_USER HEARSAY_HANDLER_TYPES_EVENT_USER                   /* val.user */
#define HEARSAY_EVENT_QUERY HEARSAY_HANDLER_TYPES_EVENT_QUERY                 /* val.query */
#define HEARSAY_EVENT_TICK HEARSAY_HANDLER_TYPES_EVENT_TICK                   /* val.tick */

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

/* What the reply, emit, command, kv, tag and http functions return. Each error is a mistake the
 * handler can deal with. */
typedef enum hearsay_err {
    HEARSAY_OK = 0,
    /* reply: the event being handled is not a query. */
    HEARSAY_ERR_NOT_A_QUERY,
    /* reply: the query was already answered (or a stream is open for it). */
    HEARSAY_ERR_ALREADY_REPLIED,
    /* reply: over what the asker can receive; emit: over the user event size limit; http: the
     * response body is larger than the agent lets a handler receive. hearsay_error_limit() gives
     * the limit in bytes (0 if the agent did not say). */
    HEARSAY_ERR_TOO_LARGE,
    /* reply: the reply channel is gone (the query timed out, the asker went away). */
    HEARSAY_ERR_CLOSED,
    /* emit, command, kv, tag: the handler has no grant for this (grants.emit, no such command in
     * grants.commands, no grants.kv, no pattern of grants.tags matching the tag). */
    HEARSAY_ERR_NOT_GRANTED,
    /* emit: the agent refused the event (e.g. a reserved name); tag: the agent refused the change
     * (e.g. the tags would exceed Serf's limit). */
    HEARSAY_ERR_REJECTED,
    /* command: it could not be started (e.g. its program does not exist). */
    HEARSAY_ERR_FAILED,
    /* kv: the write would take the store past its quota; hearsay_error_limit() gives the quota. */
    HEARSAY_ERR_QUOTA_EXCEEDED,
    /* kv: the key is empty or longer than 1 KiB; hearsay_error_limit() gives its length. */
    HEARSAY_ERR_BAD_KEY,
    /* kv: the store itself failed. */
    HEARSAY_ERR_STORE,
    /* http: the URL is not on the handler's allow-list (grants.http); no connection was made. */
    HEARSAY_ERR_DENIED,
    /* http: the request could not be made as given: a URL that is not http(s)://host[:port]/...,
     * a method, header or body the agent refused. */
    HEARSAY_ERR_INVALID_REQUEST,
    /* http: no connection: the name did not resolve, the connection was refused or timed out, or
     * TLS failed (e.g. a certificate the system does not trust). */
    HEARSAY_ERR_CONNECTION,
    /* http: the exchange failed after connecting: a malformed or incomplete response, a timeout
     * waiting for the server. */
    HEARSAY_ERR_RESPONSE,
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

/* ---- Running approved commands (needs `grants.commands = { NAME = [ARGV...] }`) --------------- */

/*
 * Runs the granted command `name` (the operator fixes its whole argv) with `len` bytes at `input`
 * on its standard input (NULL: empty), waits for it to end and fills `*out` with how it ended; free
 * that with hearsay_command_output_free. A non-zero exit is not an error: look at out->status (or
 * hearsay_command_success). Returns HEARSAY_ERR_NOT_GRANTED when no command `name` is granted,
 * HEARSAY_ERR_FAILED when it could not be started (*out is then left empty). It runs with an empty
 * environment, no shell, `/` as its working directory, and is killed at the event's deadline.
 */
hearsay_err_t hearsay_command_run(const char *name, const void *input, size_t len,
                                  hearsay_command_output_t *out);
/* Whether the command exited with status 0. */
bool hearsay_command_success(const hearsay_command_output_t *out);
void hearsay_command_output_free(hearsay_command_output_t *out);

/* ---- The key-value store (needs `grants.kv = "16MiB"`) ---------------------------------------- */

/*
 * One store per handler that survives events, reloads and agent restarts; the quota counts the
 * bytes of keys and values. Keys are NUL-terminated strings of 1 to 1024 bytes. Each function
 * returns HEARSAY_OK or HEARSAY_ERR_NOT_GRANTED (no grants.kv), _QUOTA_EXCEEDED (a write past
 * the quota; nothing written), _BAD_KEY or _STORE.
 */

/* The value of `key`: `*found` says whether it is set; when it is, `*value` holds it (free it with
 * hearsay_bytes_free; it is left empty otherwise). */
hearsay_err_t hearsay_kv_get(const char *key, hearsay_bytes_t *value, bool *found);
/* The value of `key` as a NUL-terminated string (free() it), or NULL in `*text` when not set. */
hearsay_err_t hearsay_kv_get_str(const char *key, char **text);
/* Sets `key` to `len` bytes at `value`, durably, before returning. */
hearsay_err_t hearsay_kv_set(const char *key, const void *value, size_t len);
/* Sets `key` to the NUL-terminated `text` (without the NUL). */
hearsay_err_t hearsay_kv_set_str(const char *key, const char *text);
/* Removes `key`; `*existed` (may be NULL) says whether it was set. */
hearsay_err_t hearsay_kv_delete(const char *key, bool *existed);
/* The keys that begin with `prefix`, in order ("" lists all); free them with hearsay_strings_free.
 *     hearsay_strings_t keys;
 *     if (hearsay_kv_keys("host/", &keys) == HEARSAY_OK) {
 *         for (size_t i = 0; i < keys.len; i++) ... HEARSAY_STR(keys.ptr[i]) ...
 *         hearsay_strings_free(&keys);
 *     }                                                                                          */
hearsay_err_t hearsay_kv_keys(const char *prefix, hearsay_strings_t *keys);

void hearsay_bytes_free(hearsay_bytes_t *bytes);
void hearsay_strings_free(hearsay_strings_t *strings);

/* ---- This node's tags (needs `grants.tags = ["service:*"]`) ----------------------------------- */

/*
 * Gossip carries a change to every member. Only tags whose name matches a granted pattern can be
 * changed: HEARSAY_ERR_NOT_GRANTED otherwise; HEARSAY_ERR_REJECTED when the agent refuses the change.
 * hearsay_member_tag(&me, name) on hearsay_local_member() reads a tag as the cluster last saw it.
 */
hearsay_err_t hearsay_tag_set(const char *name, const char *value);
/* Removes this node's tag `name` (HEARSAY_OK when it was not set). */
hearsay_err_t hearsay_tag_delete(const char *name);

/* ---- Outbound HTTP (needs `grants.http = ["https://hooks.example.com/ci/"]`) ------------------ */

/*
 * A small blocking client: the call returns once the whole response is read.
 *
 *     hearsay_http_response_t r;
 *     hearsay_err_t err = hearsay_http_get("http://127.0.0.1:8500/v1/status/leader", &r);
 *     if (err != HEARSAY_OK)
 *         return hearsay_fail("consul: %s", hearsay_strerror(err));
 *     hearsay_reply(r.body.ptr, r.body.len);
 *     hearsay_http_response_free(&r);
 *
 * The agent sends a request only where the operator's `http` grants for the handler allow (an
 * origin and a path prefix each); anything else fails with HEARSAY_ERR_DENIED and opens no
 * connection. The whole exchange counts against the event's timeout, and the agent caps how large
 * a response body may be (HEARSAY_ERR_TOO_LARGE). Redirects are not followed: a 3xx is returned as
 * it is. A status of 4xx or 5xx is a response like any other, not an error. Errors:
 * HEARSAY_ERR_DENIED, _INVALID_REQUEST, _CONNECTION, _TOO_LARGE, _RESPONSE; hearsay_strerror gives
 * the details ("connection failed: connection refused").
 */

/* A header field: name and value, NUL-terminated. */
typedef struct hearsay_http_header {
    const char *name;
    const char *value;
} hearsay_http_header_t;

/* A response, read whole. Free it with hearsay_http_response_free. */
typedef struct hearsay_http_response {
    /* The status code, e.g. 200. */
    uint16_t status;
    /* The header fields in the order received (n_headers of them); names are lower case. */
    hearsay_http_header_t *headers;
    size_t n_headers;
    /* The body. A NUL follows its last byte (not counted in len), so a text body can be used as a
     * C string. */
    hearsay_bytes_t body;
} hearsay_http_response_t;

/* Sends a GET request to `url` and reads the whole response into `*response`. */
hearsay_err_t hearsay_http_get(const char *url, hearsay_http_response_t *response);

/*
 * Sends a request and reads the whole response into `*response` (left empty on an error).
 * `method`: "GET", "POST", "PUT", "DELETE", "PATCH", ... `url`: http(s)://host[:port]/path?query.
 * `headers`: `n_headers` fields to send (NULL for none); Host, Connection and other hop-by-hop
 * fields are the agent's and refused. `body`: `body_len` bytes to send (NULL, 0 for none), with a
 * Content-Length unless `headers` gives one. `timeout_ms`: when not 0, bounds connecting, the wait
 * for the response and each wait between body bytes (past it, the call fails with an error the
 * handler can still report, rather than the event timing out); the event's deadline bounds the
 * whole exchange anyway.
 *     hearsay_http_header_t json[] = {{"content-type", "application/json"}};
 *     err = hearsay_http_request("POST", "https://hooks.example.com/ci/deploy", json, 1,
 *                                body, strlen(body), 5000, &r);                                  */
hearsay_err_t hearsay_http_request(const char *method, const char *url,
                                   const hearsay_http_header_t *headers, size_t n_headers,
                                   const void *body, size_t body_len, uint32_t timeout_ms,
                                   hearsay_http_response_t *response);

/* The value of the first header field `name` (any case) of `response`, or NULL. */
const char *hearsay_http_header(const hearsay_http_response_t *response, const char *name);

void hearsay_http_response_free(hearsay_http_response_t *response);

/* ---- Errors ----------------------------------------------------------------------------------- */

/*
 * A sentence describing `err`. When `err` is the error the last failing call returned, it has that
 * call's details ("the reply exceeds the asker's limit of 1024 bytes", "the reply channel is
 * closed: <cause>", "command reload could not be started: <cause>"). The text stays valid until the
 * next failing call.
 */
const char *hearsay_strerror(hearsay_err_t err);
/* The number of bytes the last error carrying one gave: the limit of a HEARSAY_ERR_TOO_LARGE, the
 * quota of a HEARSAY_ERR_QUOTA_EXCEEDED, the key's length of a HEARSAY_ERR_BAD_KEY; 0 if none. */
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

/* The names of `members` joined by `separator` ("a, b, c" for ", "), NUL-terminated; free() it.
 * NULL `members` (hearsay_event_members of an event that is not a member event) gives "". */
char *hearsay_member_names(const hearsay_members_t *members, const char *separator);

/* "none", "alive", "leaving", "left" or "failed". */
const char *hearsay_status_str(hearsay_status_t status);

/* ---- Events ----------------------------------------------------------------------------------- */

/* The event's kind as in Serf's filters: "member-join", "member-leave", "member-failed",
 * "member-update", "member-reap", "user" or "query"; "tick" for a timer. */
const char *hearsay_event_kind(const hearsay_event_t *event);
/* The members of a member event, NULL for a user event, a query or a tick. */
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
