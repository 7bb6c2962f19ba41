/*
 * hearsay.c: the helpers declared in hearsay.h, over the bindings wit-bindgen generates
 * (handler.h). It also exports the component's `handle` function, which calls the handler's
 * hearsay_handle.
 *
 * Ownership in the generated bindings: an exported function owns its arguments (the event is freed
 * here after hearsay_handle); the caller of an import keeps its arguments and owns what the import
 * returns (member lists, error causes), freed with the generated *_free functions; the error string
 * returned from `handle` is freed by the bindings' post-return function, so it must come from
 * malloc.
 */
#include "hearsay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Formatting ------------------------------------------------------------------------------- */

/* printf into a new malloc'd string; its length goes to *len. Aborts (traps) when out of memory,
 * like the bindings' own allocations. */
static char *format(size_t *len, const char *fmt, va_list args) HEARSAY_PRINTF(2, 0);
static char *format(size_t *len, const char *fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) {
        n = 0;
    }
    char *text = malloc((size_t)n + 1);
    if (text == NULL) {
        abort();
    }
    if (n > 0) {
        vsnprintf(text, (size_t)n + 1, fmt, args);
    }
    text[n] = '\0';
    *len = (size_t)n;
    return text;
}

/* ---- The exported `handle` -------------------------------------------------------------------- */

static char *fail_message;

int hearsay_fail(const char *fmt, ...) {
    size_t len;
    va_list args;
    va_start(args, fmt);
    char *text = format(&len, fmt, args);
    va_end(args);
    free(fail_message);
    fail_message = text;
    return HEARSAY_FAILED;
}

bool exports_handler_handle(handler_event_t *event, handler_string_t *err) {
    int rc = hearsay_handle(event);
    handler_event_free(event);
    if (rc == 0) {
        free(fail_message);
        fail_message = NULL;
        return true;
    }
    if (fail_message == NULL) {
        hearsay_fail("handler returned %d", rc);
    }
    /* The bindings' post-return function frees it. */
    err->ptr = (uint8_t *)fail_message;
    err->len = strlen(fail_message);
    fail_message = NULL;
    return false;
}

/* ---- Errors ----------------------------------------------------------------------------------- */

static hearsay_err_t last_error = HEARSAY_OK;
static uint64_t last_limit;
static char last_detail[320];

static const char *generic_message(hearsay_err_t err) {
    switch (err) {
    case HEARSAY_OK:
        return "no error";
    case HEARSAY_ERR_NOT_A_QUERY:
        return "the event is not a query";
    case HEARSAY_ERR_ALREADY_REPLIED:
        return "the query was already answered";
    case HEARSAY_ERR_TOO_LARGE:
        return "too large";
    case HEARSAY_ERR_CLOSED:
        return "the reply channel is closed";
    case HEARSAY_ERR_NOT_GRANTED:
        return "emitting events is not granted to this handler";
    case HEARSAY_ERR_REJECTED:
        return "the agent rejected the event";
    }
    return "unknown error";
}

const char *hearsay_strerror(hearsay_err_t err) {
    if (err != HEARSAY_OK && err == last_error) {
        return last_detail;
    }
    return generic_message(err);
}

uint64_t hearsay_error_limit(void) {
    return last_limit;
}

static hearsay_err_t failed(hearsay_err_t err, const char *fmt, ...) HEARSAY_PRINTF(2, 3);
static hearsay_err_t failed(hearsay_err_t err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_detail, sizeof last_detail, fmt, args);
    va_end(args);
    last_error = err;
    return err;
}

/* Turns a reply-error into a hearsay_err_t, remembering its details, and frees it. */
static hearsay_err_t reply_failed(hearsay_handler_types_reply_error_t *e) {
    hearsay_err_t err;
    switch (e->tag) {
    case HEARSAY_HANDLER_TYPES_REPLY_ERROR_NOT_A_QUERY:
        err = failed(HEARSAY_ERR_NOT_A_QUERY, "%s", generic_message(HEARSAY_ERR_NOT_A_QUERY));
        break;
    case HEARSAY_HANDLER_TYPES_REPLY_ERROR_ALREADY_REPLIED:
        err = failed(HEARSAY_ERR_ALREADY_REPLIED, "%s",
                     generic_message(HEARSAY_ERR_ALREADY_REPLIED));
        break;
    case HEARSAY_HANDLER_TYPES_REPLY_ERROR_TOO_LARGE:
        last_limit = e->val.too_large;
        err = failed(HEARSAY_ERR_TOO_LARGE, "the reply exceeds the asker's limit of %llu bytes",
                     (unsigned long long)e->val.too_large);
        break;
    case HEARSAY_HANDLER_TYPES_REPLY_ERROR_CLOSED:
        err = failed(HEARSAY_ERR_CLOSED, "the reply channel is closed: %.*s",
                     HEARSAY_STR(e->val.closed));
        break;
    default:
        err = failed(HEARSAY_ERR_CLOSED, "unknown reply error %d", (int)e->tag);
        break;
    }
    hearsay_handler_types_reply_error_free(e);
    return err;
}

static hearsay_err_t emit_failed(hearsay_handler_types_emit_error_t *e) {
    hearsay_err_t err;
    switch (e->tag) {
    case HEARSAY_HANDLER_TYPES_EMIT_ERROR_NOT_GRANTED:
        err = failed(HEARSAY_ERR_NOT_GRANTED, "%s", generic_message(HEARSAY_ERR_NOT_GRANTED));
        break;
    case HEARSAY_HANDLER_TYPES_EMIT_ERROR_TOO_LARGE:
        last_limit = e->val.too_large;
        err = failed(HEARSAY_ERR_TOO_LARGE,
                     "the event exceeds the user event size limit of %llu bytes",
                     (unsigned long long)e->val.too_large);
        break;
    case HEARSAY_HANDLER_TYPES_EMIT_ERROR_REJECTED:
        err = failed(HEARSAY_ERR_REJECTED, "the agent rejected the event: %.*s",
                     HEARSAY_STR(e->val.rejected));
        break;
    default:
        err = failed(HEARSAY_ERR_REJECTED, "unknown emit error %d", (int)e->tag);
        break;
    }
    hearsay_handler_types_emit_error_free(e);
    return err;
}

/* ---- Replies ---------------------------------------------------------------------------------- */

hearsay_err_t hearsay_reply(const void *data, size_t len) {
    /* The import only reads the payload. */
    handler_list_u8_t payload = {(uint8_t *)data, len};
    hearsay_handler_types_reply_error_t e;
    if (hearsay_handler_reply_respond(&payload, &e)) {
        return HEARSAY_OK;
    }
    return reply_failed(&e);
}

hearsay_err_t hearsay_reply_str(const char *text) {
    return hearsay_reply(text, strlen(text));
}

hearsay_err_t hearsay_replyf(const char *fmt, ...) {
    size_t len;
    va_list args;
    va_start(args, fmt);
    char *text = format(&len, fmt, args);
    va_end(args);
    hearsay_err_t err = hearsay_reply(text, len);
    free(text);
    return err;
}

hearsay_err_t hearsay_stream_open(hearsay_stream_t *stream) {
    hearsay_handler_types_reply_error_t e;
    stream->open = false;
    if (hearsay_handler_reply_open_stream(&stream->handle, &e)) {
        stream->open = true;
        return HEARSAY_OK;
    }
    return reply_failed(&e);
}

hearsay_err_t hearsay_stream_write(hearsay_stream_t *stream, const void *data, size_t len) {
    if (!stream->open) {
        return failed(HEARSAY_ERR_CLOSED, "the reply stream is not open");
    }
    handler_list_u8_t chunk = {(uint8_t *)data, len};
    hearsay_handler_types_reply_error_t e;
    if (hearsay_handler_reply_method_reply_stream_write(
            hearsay_handler_reply_borrow_reply_stream(stream->handle), &chunk, &e)) {
        return HEARSAY_OK;
    }
    return reply_failed(&e);
}

hearsay_err_t hearsay_stream_printf(hearsay_stream_t *stream, const char *fmt, ...) {
    size_t len;
    va_list args;
    va_start(args, fmt);
    char *text = format(&len, fmt, args);
    va_end(args);
    hearsay_err_t err = hearsay_stream_write(stream, text, len);
    free(text);
    return err;
}

hearsay_err_t hearsay_stream_finish(hearsay_stream_t *stream) {
    if (!stream->open) {
        return failed(HEARSAY_ERR_CLOSED, "the reply stream is not open");
    }
    stream->open = false;
    hearsay_handler_types_reply_error_t e;
    /* finish takes ownership of the handle, also when it fails. */
    if (hearsay_handler_reply_static_reply_stream_finish(stream->handle, &e)) {
        return HEARSAY_OK;
    }
    return reply_failed(&e);
}

void hearsay_stream_abandon(hearsay_stream_t *stream) {
    if (stream->open) {
        stream->open = false;
        hearsay_handler_reply_reply_stream_drop_own(stream->handle);
    }
}

/* ---- Emit ------------------------------------------------------------------------------------- */

hearsay_err_t hearsay_emit(const char *name, const void *payload, size_t len, bool coalesce) {
    handler_string_t n = hearsay_string(name);
    handler_list_u8_t p = {(uint8_t *)payload, len};
    hearsay_handler_types_emit_error_t e;
    if (hearsay_handler_emit_emit(&n, &p, coalesce, &e)) {
        return HEARSAY_OK;
    }
    return emit_failed(&e);
}

/* ---- Logging ---------------------------------------------------------------------------------- */

void hearsay_vlog(hearsay_level_t level, const char *fmt, va_list args) {
    size_t len;
    char *text = format(&len, fmt, args);
    handler_string_t message = {(uint8_t *)text, len};
    hearsay_handler_log_log(level, &message);
    free(text);
}

void hearsay_log(hearsay_level_t level, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    hearsay_vlog(level, fmt, args);
    va_end(args);
}

#define HEARSAY_LOG_AT(fn, level)                                                                  \
    void fn(const char *fmt, ...) {                                                                \
        va_list args;                                                                              \
        va_start(args, fmt);                                                                       \
        hearsay_vlog(level, fmt, args);                                                            \
        va_end(args);                                                                              \
    }

HEARSAY_LOG_AT(hearsay_log_trace, HEARSAY_LEVEL_TRACE)
HEARSAY_LOG_AT(hearsay_log_debug, HEARSAY_LEVEL_DEBUG)
HEARSAY_LOG_AT(hearsay_log_info, HEARSAY_LEVEL_INFO)
HEARSAY_LOG_AT(hearsay_log_warn, HEARSAY_LEVEL_WARN)
HEARSAY_LOG_AT(hearsay_log_error, HEARSAY_LEVEL_ERROR)

/* ---- Cluster ---------------------------------------------------------------------------------- */

hearsay_members_t hearsay_members(void) {
    hearsay_handler_cluster_list_member_t list;
    hearsay_handler_cluster_members(&list);
    /* The same elements; the bindings name the list type once per interface. */
    return (hearsay_members_t){list.ptr, list.len};
}

void hearsay_members_free(hearsay_members_t *members) {
    hearsay_handler_types_list_member_free(members);
    members->ptr = NULL;
    members->len = 0;
}

hearsay_member_t hearsay_local_member(void) {
    hearsay_member_t member;
    hearsay_handler_cluster_local_member(&member);
    return member;
}

void hearsay_member_free(hearsay_member_t *member) {
    hearsay_handler_types_member_free(member);
    memset(member, 0, sizeof *member);
}

const hearsay_string_t *hearsay_member_tag_n(const hearsay_member_t *member, const char *key,
                                             size_t key_len) {
    for (size_t i = 0; i < member->tags.len; i++) {
        const hearsay_tag_t *tag = &member->tags.ptr[i];
        if (tag->f0.len == key_len && (key_len == 0 || memcmp(tag->f0.ptr, key, key_len) == 0)) {
            return &tag->f1;
        }
    }
    return NULL;
}

const hearsay_string_t *hearsay_member_tag(const hearsay_member_t *member, const char *key) {
    return hearsay_member_tag_n(member, key, strlen(key));
}

char *hearsay_member_names(const hearsay_members_t *members, const char *separator) {
    size_t sep_len = strlen(separator);
    size_t size = 1;
    for (size_t i = 0; i < members->len; i++) {
        size += members->ptr[i].name.len + (i > 0 ? sep_len : 0);
    }
    char *names = malloc(size);
    if (names == NULL) {
        abort();
    }
    char *p = names;
    for (size_t i = 0; i < members->len; i++) {
        if (i > 0) {
            memcpy(p, separator, sep_len);
            p += sep_len;
        }
        if (members->ptr[i].name.len > 0) {
            memcpy(p, members->ptr[i].name.ptr, members->ptr[i].name.len);
            p += members->ptr[i].name.len;
        }
    }
    *p = '\0';
    return names;
}

const char *hearsay_status_str(hearsay_status_t status) {
    switch (status) {
    case HEARSAY_STATUS_NONE:
        return "none";
    case HEARSAY_STATUS_ALIVE:
        return "alive";
    case HEARSAY_STATUS_LEAVING:
        return "leaving";
    case HEARSAY_STATUS_LEFT:
        return "left";
    case HEARSAY_STATUS_FAILED:
        return "failed";
    }
    return "unknown";
}

/* ---- Events ----------------------------------------------------------------------------------- */

const char *hearsay_event_kind(const hearsay_event_t *event) {
    switch (event->tag) {
    case HEARSAY_EVENT_MEMBER_JOIN:
        return "member-join";
    case HEARSAY_EVENT_MEMBER_LEAVE:
        return "member-leave";
    case HEARSAY_EVENT_MEMBER_FAILED:
        return "member-failed";
    case HEARSAY_EVENT_MEMBER_UPDATE:
        return "member-update";
    case HEARSAY_EVENT_MEMBER_REAP:
        return "member-reap";
    case HEARSAY_EVENT_USER:
        return "user";
    case HEARSAY_EVENT_QUERY:
        return "query";
    }
    return "unknown";
}

const hearsay_members_t *hearsay_event_members(const hearsay_event_t *event) {
    switch (event->tag) {
    case HEARSAY_EVENT_MEMBER_JOIN:
        return &event->val.member_join;
    case HEARSAY_EVENT_MEMBER_LEAVE:
        return &event->val.member_leave;
    case HEARSAY_EVENT_MEMBER_FAILED:
        return &event->val.member_failed;
    case HEARSAY_EVENT_MEMBER_UPDATE:
        return &event->val.member_update;
    case HEARSAY_EVENT_MEMBER_REAP:
        return &event->val.member_reap;
    }
    return NULL;
}

/* ---- Strings ---------------------------------------------------------------------------------- */

hearsay_string_t hearsay_string(const char *text) {
    return (hearsay_string_t){(uint8_t *)text, strlen(text)};
}

bool hearsay_str_eq(hearsay_string_t s, const char *text) {
    size_t len = strlen(text);
    return s.len == len && (len == 0 || memcmp(s.ptr, text, len) == 0);
}

char *hearsay_strdup(const void *data, size_t len) {
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        abort();
    }
    if (len > 0) {
        memcpy(copy, data, len);
    }
    copy[len] = '\0';
    return copy;
}
