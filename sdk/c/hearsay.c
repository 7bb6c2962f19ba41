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
#include <strings.h>

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
    case HEARSAY_ERR_DENIED:
        return "denied by the agent's http allow-list";
    case HEARSAY_ERR_INVALID_REQUEST:
        return "invalid request";
    case HEARSAY_ERR_CONNECTION:
        return "connection failed";
    case HEARSAY_ERR_RESPONSE:
        return "response failed";
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

/* ---- Outbound HTTP ---------------------------------------------------------------------------- */

/*
 * The exchange over the wasi:http bindings: fields -> outgoing-request (takes the fields) ->
 * outgoing-handler.handle (takes the request and its options) -> future-incoming-response ->
 * incoming-response -> incoming-body -> input-stream. Every handle owned here is dropped here, a
 * child before its parent: the request body's output-stream before the body is finished; the
 * response's headers, then the input-stream, then the incoming-body, then the response, then its
 * future. The host refuses a URL off the allow-list in handle, before any connection.
 */

/* Bytes written to the request body per call (the most a blocking write takes at once). */
#define HTTP_WRITE_CHUNK 4096
/* Bytes asked for per read of the response body. */
#define HTTP_READ_CHUNK (64 << 10)

/* The WIT name of a wasi:http error-code case (in the WIT's order: a tag is its index). */
static const char *code_name(uint8_t tag) {
    static const char *const names[] = {
        "DNS-timeout",
        "DNS-error",
        "destination-not-found",
        "destination-unavailable",
        "destination-IP-prohibited",
        "destination-IP-unroutable",
        "connection-refused",
        "connection-terminated",
        "connection-timeout",
        "connection-read-timeout",
        "connection-write-timeout",
        "connection-limit-reached",
        "TLS-protocol-error",
        "TLS-certificate-error",
        "TLS-alert-received",
        "HTTP-request-denied",
        "HTTP-request-length-required",
        "HTTP-request-body-size",
        "HTTP-request-method-invalid",
        "HTTP-request-URI-invalid",
        "HTTP-request-URI-too-long",
        "HTTP-request-header-section-size",
        "HTTP-request-header-size",
        "HTTP-request-trailer-section-size",
        "HTTP-request-trailer-size",
        "HTTP-response-incomplete",
        "HTTP-response-header-section-size",
        "HTTP-response-header-size",
        "HTTP-response-body-size",
        "HTTP-response-trailer-section-size",
        "HTTP-response-trailer-size",
        "HTTP-response-transfer-coding",
        "HTTP-response-content-coding",
        "HTTP-response-timeout",
        "HTTP-upgrade-failed",
        "HTTP-protocol-error",
        "loop-detected",
        "configuration-error",
        "internal-error",
    };
    return tag < sizeof names / sizeof names[0] ? names[tag] : "unknown error code";
}

/* Remembers an HTTP error of `kind`, its details prefixed as the Rust SDK's HttpError shows them
 * ("connection failed: connection refused"). */
static hearsay_err_t http_failed(hearsay_err_t kind, const char *fmt, ...) HEARSAY_PRINTF(2, 3);
static hearsay_err_t http_failed(hearsay_err_t kind, const char *fmt, ...) {
    char why[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof why, fmt, args);
    va_end(args);
    switch (kind) {
    case HEARSAY_ERR_INVALID_REQUEST:
        return failed(kind, "invalid request: %s", why);
    case HEARSAY_ERR_CONNECTION:
        return failed(kind, "connection failed: %s", why);
    case HEARSAY_ERR_RESPONSE:
        return failed(kind, "response failed: %s", why);
    default:
        return failed(kind, "%s", why);
    }
}

/* Turns a wasi:http error code into a hearsay_err_t as the Rust SDK's `from_code` does,
 * remembering its details, and frees it. */
static hearsay_err_t code_failed(wasi_http_types_error_code_t *code) {
    hearsay_err_t err;
    const char *name = code_name(code->tag);
    switch (code->tag) {
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED:
        err = failed(HEARSAY_ERR_DENIED, "%s", generic_message(HEARSAY_ERR_DENIED));
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_BODY_SIZE:
        last_limit = code->val.http_response_body_size.is_some
                         ? code->val.http_response_body_size.val
                         : 0;
        if (last_limit > 0) {
            err = failed(HEARSAY_ERR_TOO_LARGE,
                         "response body larger than the agent allows (%llu bytes)",
                         (unsigned long long)last_limit);
        } else {
            err = failed(HEARSAY_ERR_TOO_LARGE, "response body larger than the agent allows");
        }
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_DNS_TIMEOUT:
        err = http_failed(HEARSAY_ERR_CONNECTION, "name lookup timed out");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_DNS_ERROR: {
        const handler_option_string_t *rcode = &code->val.dns_error.rcode;
        err = http_failed(HEARSAY_ERR_CONNECTION, "name lookup failed%s%.*s",
                          rcode->is_some ? ": " : "", rcode->is_some ? (int)rcode->val.len : 0,
                          rcode->is_some ? (const char *)rcode->val.ptr : "");
        break;
    }
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_NOT_FOUND:
        err = http_failed(HEARSAY_ERR_CONNECTION, "host not found");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_UNAVAILABLE:
        err = http_failed(HEARSAY_ERR_CONNECTION, "host unavailable");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_PROHIBITED:
        err = http_failed(HEARSAY_ERR_CONNECTION, "address prohibited");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_UNROUTABLE:
        err = http_failed(HEARSAY_ERR_CONNECTION, "address unreachable");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_REFUSED:
        err = http_failed(HEARSAY_ERR_CONNECTION, "connection refused");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TERMINATED:
        err = http_failed(HEARSAY_ERR_CONNECTION, "connection closed");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TIMEOUT:
        err = http_failed(HEARSAY_ERR_CONNECTION, "connect timed out");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_LIMIT_REACHED:
        err = http_failed(HEARSAY_ERR_CONNECTION, "too many requests in this event");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_TLS_PROTOCOL_ERROR:
        err = http_failed(HEARSAY_ERR_CONNECTION, "TLS protocol error");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_TLS_CERTIFICATE_ERROR:
        err = http_failed(HEARSAY_ERR_CONNECTION, "TLS certificate not trusted");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_TLS_ALERT_RECEIVED: {
        const handler_option_string_t *m = &code->val.tls_alert_received.alert_message;
        err = http_failed(HEARSAY_ERR_CONNECTION, "TLS alert from the server%s%.*s",
                          m->is_some ? ": " : "", m->is_some ? (int)m->val.len : 0,
                          m->is_some ? (const char *)m->val.ptr : "");
        break;
    }
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_READ_TIMEOUT:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TIMEOUT:
        err = http_failed(HEARSAY_ERR_RESPONSE, "timed out waiting for the server");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_WRITE_TIMEOUT:
        err = http_failed(HEARSAY_ERR_RESPONSE, "timed out sending the request");
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_METHOD_INVALID:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_URI_INVALID:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_URI_TOO_LONG:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_LENGTH_REQUIRED:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_BODY_SIZE:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_HEADER_SECTION_SIZE:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_HEADER_SIZE:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_TRAILER_SECTION_SIZE:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_TRAILER_SIZE:
        err = http_failed(HEARSAY_ERR_INVALID_REQUEST, "%s", name);
        break;
    case WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR:
        if (code->val.internal_error.is_some) {
            err = http_failed(HEARSAY_ERR_RESPONSE, "%.*s",
                              HEARSAY_STR(code->val.internal_error.val));
        } else {
            err = http_failed(HEARSAY_ERR_RESPONSE, "%s", name);
        }
        break;
    default:
        err = http_failed(HEARSAY_ERR_RESPONSE, "%s", name);
        break;
    }
    wasi_http_types_error_code_free(code);
    return err;
}

/* Splits `http(s)://authority/path?query#fragment` into its parts (the fragment is dropped);
 * `*authority` and `*target` are malloc'd. */
static hearsay_err_t split_url(const char *url, wasi_http_types_scheme_t *scheme, char **authority,
                               char **target) {
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        return http_failed(HEARSAY_ERR_INVALID_REQUEST,
                           "url %s: expected http://host/... or https://host/...", url);
    }
    size_t scheme_len = (size_t)(sep - url);
    if (scheme_len == 4 && strncasecmp(url, "http", 4) == 0) {
        scheme->tag = WASI_HTTP_TYPES_SCHEME_HTTP;
    } else if (scheme_len == 5 && strncasecmp(url, "https", 5) == 0) {
        scheme->tag = WASI_HTTP_TYPES_SCHEME_HTTPS;
    } else {
        return http_failed(HEARSAY_ERR_INVALID_REQUEST, "url %s: the scheme is not http or https",
                           url);
    }
    const char *rest = sep + 3;
    size_t rest_len = strcspn(rest, "#");
    size_t end = strcspn(rest, "/?#");
    if (end == 0) {
        return http_failed(HEARSAY_ERR_INVALID_REQUEST, "url %s: no host", url);
    }
    *authority = hearsay_strdup(rest, end);
    const char *t = rest + end;
    size_t t_len = rest_len - end;
    if (t_len == 0 || t[0] == '?') {
        /* "" is "/", "?q" is "/?q". */
        char *path = malloc(t_len + 2);
        if (path == NULL) {
            abort();
        }
        path[0] = '/';
        memcpy(path + 1, t, t_len);
        path[t_len + 1] = '\0';
        *target = path;
    } else {
        *target = hearsay_strdup(t, t_len);
    }
    return HEARSAY_OK;
}

/* The wasi:http method for `name` (`other` borrows `name`). */
static wasi_http_types_method_t http_method(const char *name) {
    static const char *const known[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                        "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    wasi_http_types_method_t method;
    for (uint8_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(name, known[i]) == 0) {
            /* The cases GET .. PATCH are 0 .. 8, in this order. */
            method.tag = i;
            return method;
        }
    }
    method.tag = WASI_HTTP_TYPES_METHOD_OTHER;
    method.val.other = hearsay_string(name);
    return method;
}

/* Drops the error resource a failed stream operation carries. */
static void stream_error_drop(wasi_io_streams_stream_error_t *e) {
    if (e->tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED) {
        wasi_io_error_error_drop_own(e->val.last_operation_failed);
    }
}

/* Sends `len` bytes at `data` as the request body, in chunks. A refused request closes the body
 * early; the response then says why. */
static void write_body(wasi_http_types_own_outgoing_body_t body, const uint8_t *data, size_t len) {
    wasi_http_types_own_output_stream_t stream;
    if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body),
                                                    &stream)) {
        return;
    }
    for (size_t off = 0; off < len; off += HTTP_WRITE_CHUNK) {
        size_t n = len - off < HTTP_WRITE_CHUNK ? len - off : HTTP_WRITE_CHUNK;
        handler_list_u8_t chunk = {(uint8_t *)data + off, n};
        wasi_io_streams_stream_error_t e;
        if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(
                wasi_io_streams_borrow_output_stream(stream), &chunk, &e)) {
            stream_error_drop(&e);
            break;
        }
    }
    /* The stream is the body's child: it goes before the body is finished. */
    wasi_io_streams_output_stream_drop_own(stream);
}

/* Waits for the response head of `future`. */
static hearsay_err_t wait_response(wasi_http_types_own_future_incoming_response_t future,
                                   wasi_http_types_own_incoming_response_t *response) {
    wasi_http_types_borrow_future_incoming_response_t f =
        wasi_http_types_borrow_future_incoming_response(future);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    while (!wasi_http_types_method_future_incoming_response_get(f, &got)) {
        wasi_io_poll_own_pollable_t ready =
            wasi_http_types_method_future_incoming_response_subscribe(f);
        wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
        wasi_io_poll_pollable_drop_own(ready);
    }
    if (got.is_err) {
        return http_failed(HEARSAY_ERR_RESPONSE, "response already taken");
    }
    if (got.val.ok.is_err) {
        return code_failed(&got.val.ok.val.err);
    }
    *response = got.val.ok.val.ok;
    return HEARSAY_OK;
}

/* A body read error the host gave only as text. */
static hearsay_err_t body_error(const handler_string_t *text) {
    char *t = hearsay_strdup(text->ptr, text->len);
    hearsay_err_t err;
    /* wasmtime's text for its body size error (the agent's response body cap). */
    if (strstr(t, "body size exceeds limit") != NULL || strstr(t, "HttpResponseBodySize") != NULL) {
        last_limit = 0;
        err = failed(HEARSAY_ERR_TOO_LARGE, "response body larger than the agent allows");
    } else {
        err = http_failed(HEARSAY_ERR_RESPONSE, "reading the body: %s", t);
    }
    free(t);
    return err;
}

/* Appends `n` bytes to `body` (of capacity `*cap`), keeping a NUL after them. */
static void body_append(hearsay_bytes_t *body, size_t *cap, const uint8_t *data, size_t n) {
    if (body->len + n + 1 > *cap) {
        size_t want = *cap > 0 ? *cap : 4096;
        while (want < body->len + n + 1) {
            want *= 2;
        }
        uint8_t *grown = realloc(body->ptr, want);
        if (grown == NULL) {
            abort();
        }
        body->ptr = grown;
        *cap = want;
    }
    if (n > 0) {
        memcpy(body->ptr + body->len, data, n);
    }
    body->len += n;
    body->ptr[body->len] = '\0';
}

/* Reads the header fields of `response` into `out`. */
static void read_headers(wasi_http_types_borrow_incoming_response_t response,
                         hearsay_http_response_t *out) {
    wasi_http_types_own_headers_t fields =
        wasi_http_types_method_incoming_response_headers(response);
    wasi_http_types_list_tuple2_field_name_field_value_t entries;
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(fields), &entries);
    /* The fields are the response's child: they go first. */
    wasi_http_types_fields_drop_own(fields);
    if (entries.len > 0) {
        out->headers = calloc(entries.len, sizeof *out->headers);
        if (out->headers == NULL) {
            abort();
        }
    }
    for (size_t i = 0; i < entries.len; i++) {
        out->headers[i].name = hearsay_strdup(entries.ptr[i].f0.ptr, entries.ptr[i].f0.len);
        out->headers[i].value = hearsay_strdup(entries.ptr[i].f1.ptr, entries.ptr[i].f1.len);
    }
    out->n_headers = entries.len;
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
}

/* Reads the whole body of `response` into `out->body`. */
static hearsay_err_t read_body(wasi_http_types_borrow_incoming_response_t response,
                               hearsay_http_response_t *out) {
    wasi_http_types_own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_response_consume(response, &body)) {
        return http_failed(HEARSAY_ERR_RESPONSE, "response body already taken");
    }
    wasi_http_types_own_input_stream_t stream;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                     &stream)) {
        wasi_http_types_incoming_body_drop_own(body);
        return http_failed(HEARSAY_ERR_RESPONSE, "response body already taken");
    }
    hearsay_err_t err = HEARSAY_OK;
    size_t cap = 0;
    body_append(&out->body, &cap, NULL, 0);
    for (;;) {
        handler_list_u8_t chunk;
        wasi_io_streams_stream_error_t e;
        if (wasi_io_streams_method_input_stream_blocking_read(
                wasi_io_streams_borrow_input_stream(stream), HTTP_READ_CHUNK, &chunk, &e)) {
            body_append(&out->body, &cap, chunk.ptr, chunk.len);
            handler_list_u8_free(&chunk);
            continue;
        }
        if (e.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED) {
            wasi_io_error_borrow_error_t failure =
                wasi_io_error_borrow_error(e.val.last_operation_failed);
            wasi_http_types_error_code_t code;
            if (wasi_http_types_http_error_code(failure, &code)) {
                err = code_failed(&code);
            } else {
                handler_string_t text;
                wasi_io_error_method_error_to_debug_string(failure, &text);
                err = body_error(&text);
                handler_string_free(&text);
            }
            stream_error_drop(&e);
        }
        break;
    }
    /* Child before parent: the stream, then the body (its trailers are not read). */
    wasi_io_streams_input_stream_drop_own(stream);
    wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(body));
    return err;
}

/* Makes the request for the parts of a URL (see hearsay_http_request). */
static hearsay_err_t send_request(const char *method, const wasi_http_types_scheme_t *scheme,
                                  const char *authority, const char *target,
                                  const hearsay_http_header_t *headers, size_t n_headers,
                                  const void *body, size_t body_len, uint32_t timeout_ms,
                                  hearsay_http_response_t *response) {
    /* The header fields, and a Content-Length for a body unless one is given. */
    bool has_length = false;
    for (size_t i = 0; i < n_headers; i++) {
        has_length = has_length || strcasecmp(headers[i].name, "content-length") == 0;
    }
    char length[24];
    size_t n_fields = n_headers + (body_len > 0 && !has_length ? 1 : 0);
    wasi_http_types_tuple2_field_name_field_value_t *fields =
        calloc(n_fields > 0 ? n_fields : 1, sizeof *fields);
    if (fields == NULL) {
        abort();
    }
    for (size_t i = 0; i < n_headers; i++) {
        fields[i].f0 = hearsay_string(headers[i].name);
        fields[i].f1 = (wasi_http_types_field_value_t){(uint8_t *)headers[i].value,
                                                        strlen(headers[i].value)};
    }
    if (n_fields > n_headers) {
        snprintf(length, sizeof length, "%zu", body_len);
        fields[n_headers].f0 = hearsay_string("content-length");
        fields[n_headers].f1 = (wasi_http_types_field_value_t){(uint8_t *)length, strlen(length)};
    }
    /* The import only reads the list. */
    wasi_http_types_list_tuple2_field_name_field_value_t list = {fields, n_fields};
    wasi_http_types_own_fields_t head;
    wasi_http_types_header_error_t header_error;
    bool made = wasi_http_types_static_fields_from_list(&list, &head, &header_error);
    free(fields);
    if (!made) {
        static const char *const why[] = {"invalid-syntax", "forbidden", "immutable"};
        return http_failed(HEARSAY_ERR_INVALID_REQUEST, "header fields: %s",
                           header_error.tag < 3 ? why[header_error.tag] : "refused");
    }

    /* The request takes the fields. */
    wasi_http_types_own_outgoing_request_t request =
        wasi_http_types_constructor_outgoing_request(head);
    wasi_http_types_borrow_outgoing_request_t r = wasi_http_types_borrow_outgoing_request(request);
    wasi_http_types_method_t m = http_method(method);
    /* The setters only read their arguments. */
    wasi_http_types_scheme_t sch = *scheme;
    handler_string_t authority_s = hearsay_string(authority);
    handler_string_t target_s = hearsay_string(target);
    wasi_http_types_own_outgoing_body_t request_body;
    hearsay_err_t err = HEARSAY_OK;
    if (!wasi_http_types_method_outgoing_request_set_method(r, &m)) {
        err = http_failed(HEARSAY_ERR_INVALID_REQUEST, "method %s", method);
    } else if (!wasi_http_types_method_outgoing_request_set_scheme(r, &sch)) {
        err = http_failed(HEARSAY_ERR_INVALID_REQUEST, "scheme");
    } else if (!wasi_http_types_method_outgoing_request_set_authority(r, &authority_s)) {
        err = http_failed(HEARSAY_ERR_INVALID_REQUEST, "host %s", authority);
    } else if (!wasi_http_types_method_outgoing_request_set_path_with_query(r, &target_s)) {
        err = http_failed(HEARSAY_ERR_INVALID_REQUEST, "path %s", target);
    } else if (!wasi_http_types_method_outgoing_request_body(r, &request_body)) {
        err = http_failed(HEARSAY_ERR_INVALID_REQUEST, "request body");
    }
    if (err != HEARSAY_OK) {
        wasi_http_types_outgoing_request_drop_own(request);
        return err;
    }

    wasi_http_types_own_request_options_t options;
    if (timeout_ms > 0) {
        wasi_http_types_duration_t nanos = (uint64_t)timeout_ms * 1000000u;
        options = wasi_http_types_constructor_request_options();
        wasi_http_types_borrow_request_options_t o =
            wasi_http_types_borrow_request_options(options);
        /* A host may not support a timeout; the event's deadline still holds. */
        wasi_http_types_method_request_options_set_connect_timeout(o, &nanos);
        wasi_http_types_method_request_options_set_first_byte_timeout(o, &nanos);
        wasi_http_types_method_request_options_set_between_bytes_timeout(o, &nanos);
    }

    /* handle takes the request and the options, also when it fails. */
    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(request, timeout_ms > 0 ? &options : NULL, &future,
                                           &code)) {
        wasi_http_types_outgoing_body_drop_own(request_body);
        return code_failed(&code);
    }
    /* The body streams to the connection once the request is handed over. */
    if (body_len > 0) {
        write_body(request_body, body, body_len);
    }
    wasi_http_types_error_code_t finish_code;
    bool finished = wasi_http_types_static_outgoing_body_finish(request_body, NULL, &finish_code);

    wasi_http_types_own_incoming_response_t incoming;
    err = wait_response(future, &incoming);
    if (!finished) {
        /* The response's own error says more, when there is one. */
        if (err == HEARSAY_OK) {
            wasi_http_types_incoming_response_drop_own(incoming);
            err = code_failed(&finish_code);
        } else {
            wasi_http_types_error_code_free(&finish_code);
        }
    } else if (err == HEARSAY_OK) {
        wasi_http_types_borrow_incoming_response_t in =
            wasi_http_types_borrow_incoming_response(incoming);
        response->status = wasi_http_types_method_incoming_response_status(in);
        read_headers(in, response);
        err = read_body(in, response);
        wasi_http_types_incoming_response_drop_own(incoming);
        if (err != HEARSAY_OK) {
            hearsay_http_response_free(response);
        }
    }
    wasi_http_types_future_incoming_response_drop_own(future);
    return err;
}

hearsay_err_t hearsay_http_request(const char *method, const char *url,
                                   const hearsay_http_header_t *headers, size_t n_headers,
                                   const void *body, size_t body_len, uint32_t timeout_ms,
                                   hearsay_http_response_t *response) {
    memset(response, 0, sizeof *response);
    wasi_http_types_scheme_t scheme;
    char *authority, *target;
    hearsay_err_t err = split_url(url, &scheme, &authority, &target);
    if (err != HEARSAY_OK) {
        return err;
    }
    err = send_request(method, &scheme, authority, target, headers, n_headers, body, body_len,
                       timeout_ms, response);
    free(authority);
    free(target);
    return err;
}

hearsay_err_t hearsay_http_get(const char *url, hearsay_http_response_t *response) {
    return hearsay_http_request("GET", url, NULL, 0, NULL, 0, 0, response);
}

const char *hearsay_http_header(const hearsay_http_response_t *response, const char *name) {
    for (size_t i = 0; i < response->n_headers; i++) {
        if (strcasecmp(response->headers[i].name, name) == 0) {
            return response->headers[i].value;
        }
    }
    return NULL;
}

void hearsay_http_response_free(hearsay_http_response_t *response) {
    for (size_t i = 0; i < response->n_headers; i++) {
        free((char *)response->headers[i].name);
        free((char *)response->headers[i].value);
    }
    free(response->headers);
    free(response->body.ptr);
    memset(response, 0, sizeof *response);
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
