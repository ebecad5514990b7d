/* Requests, typed arguments, replies and events: JSON objects in and out.
 *
 * Both directions parse with the same strict rules (parse_line), so a line
 * the daemon would reject is also one the client would reject. Every error
 * text here reaches a person through a bad_request reply, so it names the
 * key at fault and what would have been accepted. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbl_proto.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if none starts
 * there. RFC 3629: shortest form only, no surrogates, nothing past U+10FFFF.
 * json-c's own check (JSON_TOKENER_VALIDATE_UTF8) lets overlong forms,
 * UTF-16 surrogates and 4-byte sequences past U+10FFFF through, and such
 * bytes, echoed back, break clients whose UTF-8 decoders are strict. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t k;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return k;
}

/* Offset of the first byte that is not well-formed UTF-8, or n. */
static size_t utf8_check(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t k = (unsigned char)s[i] < 0x80 ? 1 : utf8_seq((const unsigned char *)s + i, n - i);

        if (k == 0)
            return i;
        i += k;
    }
    return n;
}

/* One line must hold exactly one JSON object, optionally padded with
 * whitespace. json-c stops at a NUL byte and reports success for what came
 * before it, hence the check that the rest of the line is whitespace. */
static json_object *parse_line(const char *line, size_t len, char *err, size_t errlen)
{
    json_tokener *tok;
    json_object *obj;
    size_t i = 0, end;

    while (i < len && is_ws(line[i]))
        i++;
    if (i == len) {
        seterr(err, errlen, "empty line: send one JSON object per line");
        return NULL;
    }
    if (line[i] != '{') {
        seterr(err, errlen, "a message must be a JSON object, e.g. {\"op\":\"hello\"}");
        return NULL;
    }
    if (len > INT_MAX) {
        seterr(err, errlen, "line too long");
        return NULL;
    }
    end = utf8_check(line, len);
    if (end < len) {
        seterr(err, errlen, "invalid utf-8 at byte %zu: a line must be UTF-8 text", end);
        return NULL;
    }

    tok = json_tokener_new();
    if (!tok) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, line, (int)len);
    end = json_tokener_get_parse_end(tok);
    if (!obj) {
        enum json_tokener_error e = json_tokener_get_error(tok);

        if (e == json_tokener_continue)
            seterr(err, errlen, "incomplete JSON: the object is not closed by the end of the line");
        else
            seterr(err, errlen, "invalid JSON at byte %zu: %s", end, json_tokener_error_desc(e));
    } else {
        while (end < len && is_ws(line[end]))
            end++;
        if (end < len) {
            seterr(err, errlen, "unexpected data after the JSON object at byte %zu", end);
            json_object_put(obj);
            obj = NULL;
        }
    }
    json_tokener_free(tok);
    return obj;
}

/* C code reads these strings with strlen(); an embedded "\u0000" would
 * silently cut them short, so refuse it instead. */
static bool has_nul(json_object *s)
{
    return strlen(json_object_get_string(s)) != (size_t)json_object_get_string_len(s);
}

/* ---- requests ---------------------------------------------------------- */

dbl_errcode_t dbl_request_parse(const char *line, size_t len, dbl_request_t *req, char *err,
                                size_t errlen)
{
    json_object *id, *op;

    memset(req, 0, sizeof(*req));
    seterr(err, errlen, "%s", "");
    req->root = parse_line(line, len, err, errlen);
    if (!req->root)
        return DBL_E_BAD_REQUEST;

    /* The id first, so that every later error can still be matched by it. */
    if (json_object_object_get_ex(req->root, "id", &id) && id) {
        if (!json_object_is_type(id, json_type_int) && !json_object_is_type(id, json_type_string)) {
            seterr(err, errlen, "\"id\" must be an integer or a string");
            return DBL_E_BAD_REQUEST;
        }
        req->id = id;
    }

    if (!json_object_object_get_ex(req->root, "op", &op) || !op) {
        seterr(err, errlen, "missing \"op\": every request needs one, e.g. {\"op\":\"status\"}");
        return DBL_E_BAD_REQUEST;
    }
    if (!json_object_is_type(op, json_type_string) || has_nul(op)) {
        seterr(err, errlen, "\"op\" must be a string naming an operation, e.g. \"lease\"");
        return DBL_E_BAD_REQUEST;
    }
    req->op = json_object_get_string(op);
    return DBL_E_NONE;
}

void dbl_request_free(dbl_request_t *req)
{
    json_object_put(req->root);
    memset(req, 0, sizeof(*req));
}

/* ---- typed arguments --------------------------------------------------- */

/* The argument's value, or NULL when absent or null. */
static json_object *arg(const dbl_request_t *req, const char *key)
{
    json_object *v = NULL;

    if (!req->root || !json_object_object_get_ex(req->root, key, &v))
        return NULL;
    return v;
}

int dbl_arg_string(const dbl_request_t *req, const char *key, const char **out, char *err,
                   size_t errlen)
{
    json_object *v = arg(req, key);

    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_string) || has_nul(v)) {
        seterr(err, errlen, "%s must be a string", key);
        return -1;
    }
    *out = json_object_get_string(v);
    return 0;
}

int dbl_arg_int(const dbl_request_t *req, const char *key, int64_t min, int64_t max, int64_t *out,
                char *err, size_t errlen)
{
    json_object *v = arg(req, key);
    int64_t n;

    if (!v)
        return 0;
    /* Only JSON integers: 1.0, "1" and true are mistakes worth reporting. */
    if (!json_object_is_type(v, json_type_int))
        goto bad;
    n = json_object_get_int64(v);
    /* json-c saturates integers above INT64_MAX; do not let that pass for one. */
    if (n == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
        goto bad;
    if (n < min || n > max)
        goto bad;
    *out = n;
    return 0;
bad:
    seterr(err, errlen, "%s must be an integer from %" PRId64 " to %" PRId64, key, min, max);
    return -1;
}

int dbl_arg_bool(const dbl_request_t *req, const char *key, bool *out, char *err, size_t errlen)
{
    json_object *v = arg(req, key);

    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_boolean)) {
        seterr(err, errlen, "%s must be true or false", key);
        return -1;
    }
    *out = json_object_get_boolean(v);
    return 0;
}

/* ---- replies and events ------------------------------------------------ */

/* Add key = val, taking val; on failure val is released and -1 returned. */
static int put(json_object *obj, const char *key, json_object *val)
{
    if (!val || json_object_object_add(obj, key, val) < 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

/* {"id": id, "ok": ok}: id first, as readers scanning logs expect. */
static json_object *reply_new(json_object *id, bool ok)
{
    json_object *r = json_object_new_object();

    if (!r)
        return NULL;
    if ((id && put(r, "id", json_object_get(id)) < 0) ||
        put(r, "ok", json_object_new_boolean(ok)) < 0) {
        json_object_put(r);
        return NULL;
    }
    return r;
}

json_object *dbl_reply_ok(json_object *id)
{
    return reply_new(id, true);
}

json_object *dbl_reply_error(json_object *id, dbl_errcode_t code, const char *message)
{
    json_object *r = reply_new(id, false);
    json_object *e = json_object_new_object();

    /* A failure must carry a real code; NONE here is a caller bug. */
    if (code == DBL_E_NONE)
        code = DBL_E_INTERNAL;
    if (!r || !e)
        goto fail;
    if (put(e, "code", json_object_new_string(dbl_errcode_name(code))) < 0 ||
        put(e, "message", json_object_new_string(message ? message : dbl_errcode_name(code))) < 0)
        goto fail;
    if (put(r, "error", e) < 0) {
        e = NULL; /* put() released it */
        goto fail;
    }
    return r;
fail:
    json_object_put(e);
    json_object_put(r);
    return NULL;
}

json_object *dbl_event_new(const char *name)
{
    json_object *ev = json_object_new_object();

    if (ev && put(ev, "event", json_object_new_string(name)) < 0) {
        json_object_put(ev);
        return NULL;
    }
    return ev;
}

/* Copy s to out, each byte that is not part of well-formed UTF-8 replaced by
 * U+FFFD; returns the bytes written (at most 3 * n). */
static size_t utf8_repair(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;

    while (i < n) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);

        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    return o;
}

char *dbl_encode(json_object *msg, size_t *len)
{
    size_t n = 0, bad;
    const char *s = json_object_to_json_string_length(
        msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    char *line;

    if (!s)
        return NULL;
    /* json-c copies string bytes as they are, so a message that quotes a
     * client's argument cut to fit a fixed buffer (mid-character), or text
     * from elsewhere in another encoding, would make a line that every strict
     * reader, ours included, rejects. Only bytes >= 0x80 inside strings can
     * be at fault, so replacing them keeps the JSON intact. */
    bad = utf8_check(s, n);
    if (bad == n) {
        line = malloc(n + 2);
        if (!line)
            return NULL;
        memcpy(line, s, n);
    } else {
        if (n - bad > (SIZE_MAX - 2 - bad) / 3)
            return NULL;
        line = malloc(bad + 3 * (n - bad) + 2);
        if (!line)
            return NULL;
        memcpy(line, s, bad);
        n = bad + utf8_repair(s + bad, n - bad, line + bad);
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    if (len)
        *len = n + 1;
    return line;
}

/* ---- replies (client side) -------------------------------------------- */

/* Fills r from its root; false if the object is neither reply nor event. */
static bool read_reply(dbl_reply_t *r)
{
    json_object *ok, *ev, *error, *code, *msg;

    if (json_object_object_get_ex(r->root, "id", &r->id) && r->id &&
        !json_object_is_type(r->id, json_type_int) && !json_object_is_type(r->id, json_type_string))
        return false;

    if (!json_object_object_get_ex(r->root, "ok", &ok)) {
        if (!json_object_object_get_ex(r->root, "event", &ev) ||
            !json_object_is_type(ev, json_type_string))
            return false;
        r->is_event = true;
        r->event = json_object_get_string(ev);
        return true;
    }
    if (!json_object_is_type(ok, json_type_boolean))
        return false;
    r->ok = json_object_get_boolean(ok);
    if (r->ok)
        return true;

    if (!json_object_object_get_ex(r->root, "error", &error) ||
        !json_object_is_type(error, json_type_object) ||
        !json_object_object_get_ex(error, "code", &code) ||
        !json_object_is_type(code, json_type_string))
        return false;
    r->code_name = json_object_get_string(code);
    r->code = dbl_errcode_from_name(r->code_name);
    r->message = "";
    if (json_object_object_get_ex(error, "message", &msg) &&
        json_object_is_type(msg, json_type_string))
        r->message = json_object_get_string(msg);
    return true;
}

int dbl_reply_parse(const char *line, size_t len, dbl_reply_t *out)
{
    memset(out, 0, sizeof(*out));
    out->root = parse_line(line, len, NULL, 0);
    if (!out->root)
        return -EINVAL;
    if (!read_reply(out)) {
        dbl_reply_free(out);
        return -EINVAL;
    }
    return 0;
}

void dbl_reply_free(dbl_reply_t *r)
{
    json_object_put(r->root);
    memset(r, 0, sizeof(*r));
}
