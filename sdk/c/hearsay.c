/*
 * hearsay.c: the helpers declared in hearsay.h, over the bindings wit-bindgen generates
 * (handler.h). It also exports the component's `handle` function, which calls the handler's
 * hearsay_handle.
 *
 * Ownership in the generated bindings: an exported function owns its arguments (the event is freed
 * here after hearsay_handle); the caller of an import keeps its arguments and owns what the import
 * returns (member lists, command output, store values and keys, error causes), freed with the
 * generated *_free functions; the error string
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
        return "not granted to this handler";
    case HEARSAY_ERR_REJECTED:
        return "rejected by the agent";
    case HEARSAY_ERR_FAILED:
        return "the command could not be started";
    case HEARSAY_ERR_QUOTA_EXCEEDED:
        return "the write would take the store past its quota";
    case HEARSAY_ERR_BAD_KEY:
        return "a key must have 1 to 1024 bytes";
    case HEARSAY_ERR_STORE:
        return "the store failed";
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
        err = failed(HEARSAY_ERR_NOT_GRANTED, "emitting events is not granted to this handler");
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

static hearsay_err_t command_failed(const char *name, hearsay_handler_commands_command_error_t *e) {
    hearsay_err_t err;
    switch (e->tag) {
    case HEARSAY_HANDLER_COMMANDS_COMMAND_ERROR_NOT_GRANTED:
        err = failed(HEARSAY_ERR_NOT_GRANTED,
                     "no command %s is granted to this handler (grants.commands)", name);
        break;
    case HEARSAY_HANDLER_COMMANDS_COMMAND_ERROR_FAILED:
        err = failed(HEARSAY_ERR_FAILED, "command %s could not be started: %.*s", name,
                     HEARSAY_STR(e->val.failed));
        break;
    default:
        err = failed(HEARSAY_ERR_FAILED, "unknown command error %d", (int)e->tag);
        break;
    }
    hearsay_handler_commands_command_error_free(e);
    return err;
}

static hearsay_err_t kv_failed(hearsay_handler_kv_kv_error_t *e) {
    hearsay_err_t err;
    switch (e->tag) {
    case HEARSAY_HANDLER_KV_KV_ERROR_NOT_GRANTED:
        err = failed(HEARSAY_ERR_NOT_GRANTED, "this handler has no key-value store (grants.kv)");
        break;
    case HEARSAY_HANDLER_KV_KV_ERROR_QUOTA_EXCEEDED:
        last_limit = e->val.quota_exceeded;
        err = failed(HEARSAY_ERR_QUOTA_EXCEEDED,
                     "the write would take the store past its quota of %llu bytes",
                     (unsigned long long)e->val.quota_exceeded);
        break;
    case HEARSAY_HANDLER_KV_KV_ERROR_BAD_KEY:
        last_limit = e->val.bad_key;
        err = failed(HEARSAY_ERR_BAD_KEY, "a key must have 1 to 1024 bytes, this one has %llu",
                     (unsigned long long)e->val.bad_key);
        break;
    case HEARSAY_HANDLER_KV_KV_ERROR_STORE:
        err = failed(HEARSAY_ERR_STORE, "the store failed: %.*s", HEARSAY_STR(e->val.store));
        break;
    default:
        err = failed(HEARSAY_ERR_STORE, "unknown store error %d", (int)e->tag);
        break;
    }
    hearsay_handler_kv_kv_error_free(e);
    return err;
}

static hearsay_err_t tag_failed(const char *name, hearsay_handler_tags_tag_error_t *e) {
    hearsay_err_t err;
    switch (e->tag) {
    case HEARSAY_HANDLER_TAGS_TAG_ERROR_NOT_GRANTED:
        err = failed(HEARSAY_ERR_NOT_GRANTED, "tag %s matches no pattern of grants.tags", name);
        break;
    case HEARSAY_HANDLER_TAGS_TAG_ERROR_REJECTED:
        err = failed(HEARSAY_ERR_REJECTED, "the agent rejected the change of tag %s: %.*s", name,
                     HEARSAY_STR(e->val.rejected));
        break;
    default:
        err = failed(HEARSAY_ERR_REJECTED, "unknown tag error %d", (int)e->tag);
        break;
    }
    hearsay_handler_tags_tag_error_free(e);
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

/* ---- Commands --------------------------------------------------------------------------------- */

hearsay_err_t hearsay_command_run(const char *name, const void *input, size_t len,
                                  hearsay_command_output_t *out) {
    handler_string_t n = hearsay_string(name);
    /* The import only reads its arguments; NULL stdin is none. */
    handler_list_u8_t in = {(uint8_t *)input, len};
    hearsay_handler_commands_command_error_t e;
    memset(out, 0, sizeof *out);
    if (hearsay_handler_commands_run(&n, input != NULL ? &in : NULL, out, &e)) {
        return HEARSAY_OK;
    }
    memset(out, 0, sizeof *out);
    return command_failed(name, &e);
}

bool hearsay_command_success(const hearsay_command_output_t *out) {
    return out->status.is_some && out->status.val == 0;
}

void hearsay_command_output_free(hearsay_command_output_t *out) {
    hearsay_handler_commands_output_free(out);
    memset(out, 0, sizeof *out);
}

/* ---- The key-value store ---------------------------------------------------------------------- */

hearsay_err_t hearsay_kv_get(const char *key, hearsay_bytes_t *value, bool *found) {
    handler_string_t k = hearsay_string(key);
    handler_option_list_u8_t got;
    hearsay_handler_kv_kv_error_t e;
    value->ptr = NULL;
    value->len = 0;
    *found = false;
    if (!hearsay_handler_kv_get(&k, &got, &e)) {
        return kv_failed(&e);
    }
    if (got.is_some) {
        *value = got.val;
        *found = true;
    }
    return HEARSAY_OK;
}

hearsay_err_t hearsay_kv_get_str(const char *key, char **text) {
    hearsay_bytes_t value;
    bool found;
    *text = NULL;
    hearsay_err_t err = hearsay_kv_get(key, &value, &found);
    if (err == HEARSAY_OK && found) {
        *text = hearsay_strdup(value.ptr, value.len);
        hearsay_bytes_free(&value);
    }
    return err;
}

hearsay_err_t hearsay_kv_set(const char *key, const void *value, size_t len) {
    handler_string_t k = hearsay_string(key);
    handler_list_u8_t v = {(uint8_t *)value, len};
    hearsay_handler_kv_kv_error_t e;
    if (hearsay_handler_kv_set(&k, &v, &e)) {
        return HEARSAY_OK;
    }
    return kv_failed(&e);
}

hearsay_err_t hearsay_kv_set_str(const char *key, const char *text) {
    return hearsay_kv_set(key, text, strlen(text));
}

hearsay_err_t hearsay_kv_delete(const char *key, bool *existed) {
    handler_string_t k = hearsay_string(key);
    bool was = false;
    hearsay_handler_kv_kv_error_t e;
    if (existed != NULL) {
        *existed = false;
    }
    if (!hearsay_handler_kv_delete(&k, &was, &e)) {
        return kv_failed(&e);
    }
    if (existed != NULL) {
        *existed = was;
    }
    return HEARSAY_OK;
}

hearsay_err_t hearsay_kv_keys(const char *prefix, hearsay_strings_t *keys) {
    handler_string_t p = hearsay_string(prefix);
    hearsay_handler_kv_kv_error_t e;
    keys->ptr = NULL;
    keys->len = 0;
    if (hearsay_handler_kv_keys(&p, keys, &e)) {
        return HEARSAY_OK;
    }
    keys->ptr = NULL;
    keys->len = 0;
    return kv_failed(&e);
}

void hearsay_bytes_free(hearsay_bytes_t *bytes) {
    handler_list_u8_free(bytes);
    bytes->ptr = NULL;
    bytes->len = 0;
}

void hearsay_strings_free(hearsay_strings_t *strings) {
    handler_list_string_free(strings);
    strings->ptr = NULL;
    strings->len = 0;
}

/* ---- Tags ------------------------------------------------------------------------------------- */

hearsay_err_t hearsay_tag_set(const char *name, const char *value) {
    handler_string_t n = hearsay_string(name);
    handler_string_t v = hearsay_string(value);
    hearsay_handler_tags_tag_error_t e;
    if (hearsay_handler_tags_set(&n, &v, &e)) {
        return HEARSAY_OK;
    }
    return tag_failed(name, &e);
}

hearsay_err_t hearsay_tag_delete(const char *name) {
    handler_string_t n = hearsay_string(name);
    hearsay_handler_tags_tag_error_t e;
    if (hearsay_handler_tags_delete(&n, &e)) {
        return HEARSAY_OK;
    }
    return tag_failed(name, &e);
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
    if (members == NULL) {
        return hearsay_strdup("", 0);
    }
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
    case HEARSAY_EVENT_TICK:
        return "tick";
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
