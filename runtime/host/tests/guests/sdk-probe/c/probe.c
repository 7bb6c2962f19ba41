/* sdk-probe in C: see ../README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearsay.h"

/* "refused:KIND" for a failing call, with the number of the errors that carry one. */
static int refused(hearsay_err_t err) {
    switch (err) {
    case HEARSAY_ERR_NOT_GRANTED:
        hearsay_reply_str("refused:not-granted");
        break;
    case HEARSAY_ERR_FAILED:
        hearsay_reply_str("refused:failed");
        break;
    case HEARSAY_ERR_REJECTED:
        hearsay_reply_str("refused:rejected");
        break;
    case HEARSAY_ERR_STORE:
        hearsay_reply_str("refused:store");
        break;
    case HEARSAY_ERR_QUOTA_EXCEEDED:
        hearsay_replyf("refused:quota-exceeded(%llu)", (unsigned long long)hearsay_error_limit());
        break;
    case HEARSAY_ERR_BAD_KEY:
        hearsay_replyf("refused:bad-key(%llu)", (unsigned long long)hearsay_error_limit());
        break;
    case HEARSAY_ERR_DENIED:
        hearsay_reply_str("refused:denied");
        break;
    case HEARSAY_ERR_INVALID_REQUEST:
        hearsay_reply_str("refused:invalid-request");
        break;
    case HEARSAY_ERR_CONNECTION:
        hearsay_reply_str("refused:connection");
        break;
    case HEARSAY_ERR_TOO_LARGE:
        hearsay_reply_str("refused:too-large");
        break;
    case HEARSAY_ERR_RESPONSE:
        hearsay_reply_str("refused:response");
        break;
    default:
        hearsay_replyf("refused:other %s", hearsay_strerror(err));
        break;
    }
    return HEARSAY_OK;
}

/* Splits `text` at the first `sep` (in place): the part after it, or "" without one. */
static char *split(char *text, char sep) {
    char *at = strchr(text, sep);
    if (at == NULL) {
        return text + strlen(text);
    }
    *at = '\0';
    return at + 1;
}

static int kv(char *payload) {
    char *key = split(payload, ' ');
    char *value = split(key, ' ');
    hearsay_err_t err;
    if (strcmp(payload, "set") == 0) {
        err = hearsay_kv_set_str(key, value);
        return err != HEARSAY_OK ? refused(err) : (hearsay_reply_str("ok"), HEARSAY_OK);
    }
    if (strcmp(payload, "get") == 0) {
        char *text;
        err = hearsay_kv_get_str(key, &text);
        if (err != HEARSAY_OK) {
            return refused(err);
        }
        hearsay_reply_str(text != NULL ? text : "none");
        free(text);
        return HEARSAY_OK;
    }
    if (strcmp(payload, "del") == 0) {
        bool existed;
        err = hearsay_kv_delete(key, &existed);
        return err != HEARSAY_OK ? refused(err)
                                 : (hearsay_reply_str(existed ? "true" : "false"), HEARSAY_OK);
    }
    if (strcmp(payload, "keys") == 0) {
        hearsay_strings_t keys;
        err = hearsay_kv_keys(key, &keys);
        if (err != HEARSAY_OK) {
            return refused(err);
        }
        hearsay_stream_t out;
        hearsay_stream_open(&out);
        for (size_t i = 0; i < keys.len; i++) {
            hearsay_stream_printf(&out, "%s%.*s", i > 0 ? "," : "", HEARSAY_STR(keys.ptr[i]));
        }
        hearsay_stream_finish(&out);
        hearsay_strings_free(&keys);
        return HEARSAY_OK;
    }
    return hearsay_fail("unknown op %s", payload);
}

/* Ends `payload` at its first newline: what followed it (NULL without one), its length in *len. */
static const char *rest_after_newline(char *payload, size_t *len) {
    char *newline = strchr(payload, '\n');
    *len = 0;
    if (newline == NULL) {
        return NULL;
    }
    *newline = '\0';
    *len = strlen(newline + 1);
    return newline + 1;
}

static int command(char *payload) {
    size_t len;
    const char *input = rest_after_newline(payload, &len);
    hearsay_command_output_t out;
    hearsay_err_t err = hearsay_command_run(payload, input, len, &out);
    if (err != HEARSAY_OK) {
        return refused(err);
    }
    char status[16] = "none", signal[16] = "none";
    if (out.status.is_some) {
        snprintf(status, sizeof status, "%d", (int)out.status.val);
    }
    if (out.signal.is_some) {
        snprintf(signal, sizeof signal, "%d", (int)out.signal.val);
    }
    hearsay_replyf("status=%s signal=%s cut=%s out=%.*s err=%.*s", status, signal,
                   out.truncated ? "true" : "false", HEARSAY_STR(out.stdout_),
                   HEARSAY_STR(out.stderr_));
    hearsay_command_output_free(&out);
    return HEARSAY_OK;
}

static int tag(char *payload) {
    char *name = split(payload, ' ');
    char *value = split(name, ' ');
    hearsay_err_t err = strcmp(payload, "set") == 0 ? hearsay_tag_set(name, value)
                                                     : hearsay_tag_delete(name);
    return err != HEARSAY_OK ? refused(err) : (hearsay_reply_str("ok"), HEARSAY_OK);
}

/* "METHOD URL", then the body after a newline if there is one. */
static int http(char *payload) {
    size_t len;
    const char *body = rest_after_newline(payload, &len);
    char *url = split(payload, ' ');
    hearsay_http_response_t response;
    hearsay_err_t err = hearsay_http_request(payload, url, NULL, 0, body, len, 0, &response);
    if (err != HEARSAY_OK) {
        return refused(err);
    }
    hearsay_stream_t out;
    hearsay_stream_open(&out);
    hearsay_stream_printf(&out, "status=%u body=", (unsigned)response.status);
    hearsay_stream_write(&out, response.body.ptr, response.body.len);
    hearsay_stream_finish(&out);
    hearsay_http_response_free(&response);
    return HEARSAY_OK;
}

int hearsay_handle(const hearsay_event_t *event) {
    if (event->tag == HEARSAY_EVENT_TICK) {
        char text[64];
        snprintf(text, sizeof text, "%llu/%llu", (unsigned long long)event->val.tick.period_ms,
                 (unsigned long long)event->val.tick.count);
        hearsay_err_t err = hearsay_kv_set_str("tick", text);
        return err != HEARSAY_OK ? hearsay_fail("tick: %s", hearsay_strerror(err)) : HEARSAY_OK;
    }
    if (event->tag != HEARSAY_EVENT_QUERY) {
        return HEARSAY_OK;
    }
    const hearsay_query_t *q = &event->val.query;
    char *payload = hearsay_strdup(q->payload.ptr, q->payload.len);
    int rc;
    if (hearsay_str_eq(q->name, "kv")) {
        rc = kv(payload);
    } else if (hearsay_str_eq(q->name, "command")) {
        rc = command(payload);
    } else if (hearsay_str_eq(q->name, "tag")) {
        rc = tag(payload);
    } else if (hearsay_str_eq(q->name, "http")) {
        rc = http(payload);
    } else {
        rc = hearsay_fail("unknown query %.*s", HEARSAY_STR(q->name));
    }
    free(payload);
    return rc;
}
