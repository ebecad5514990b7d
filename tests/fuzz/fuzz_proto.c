/* libFuzzer target for proto/: the line decoder, request parsing, typed
 * arguments, replies, events and the client-side reply parser.
 *
 * An input that does not start with 0xFF is the byte stream itself, fed in
 * one piece with the default limit, so plain NDJSON files are seeds as they
 * are. One that starts with 0xFF lets the fuzzer steer the framing:
 *
 *   byte 0   0xFF
 *   byte 1   flags: bits 0-1 max_line mode (0: dbl_decoder_init's default,
 *            1: DBL_PROTO_MAX_LINE, 2: 1 + byte 2, 3: 1 + 64 * byte 2),
 *            bits 2-4 number of chunk-size bytes - 1, bit 5 repeat the
 *            body, bit 6 start with a 0-byte feed, bit 7 pull lines only
 *            after every other feed
 *   byte 2   max_line parameter (modes 2 and 3)
 *   byte 3   repeat count - 1 (bit 5): a short input makes a long stream
 *   byte 4   size of the buffer the daemon-like error messages are
 *            snprintf'd into (1..256): truncation at any byte
 *   byte 5…  chunk sizes, used in a cycle: 0x00-0xBF are 1-192 bytes,
 *            0xC0-0xFF are 4-256 KiB
 *   rest     the byte stream, fed to the decoder in those chunks
 *
 * Invariants checked (each failure aborts):
 *   - the decoder returns exactly the lines a reference splitter finds, in
 *     order, with '\r' dropped and NUL-terminated, and reports -E2BIG in
 *     precisely the feed that carries the first over-long line;
 *   - a line dbl_request_parse accepts is strictly valid UTF-8, its op has
 *     no NUL, and re-encoding it with dbl_encode parses to the same op/id
 *     (that is the client → daemon path);
 *   - typed arguments honour their contract (0/-1, range, message);
 *   - every reply and event the daemon could build from the request —
 *     including messages truncated mid-character by a fixed buffer — encodes
 *     to one line of strictly valid UTF-8 that dbl_reply_parse accepts with
 *     the same id, ok, code and (when it was valid UTF-8) message;
 *   - a raw line dbl_reply_parse accepts re-encodes to one it accepts again.
 * LeakSanitizer turns any leak into a failure. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbl_proto.h"

#define HEADER 5 /* 0xFF and four parameter bytes */
#define MAX_STREAM (192 * 1024) /* enough to pass the 64 KiB limit twice */
/* Lines per input that get the full parse/reply treatment; the decoder
 * checks cover every line. Keeps long repeated streams fast. */
#define MAX_HANDLED 8

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_proto: invariant failed at %s:%d: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- helpers ----------------------------------------------------------- */

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
 * Written independently of proto/ so that it can judge it. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static bool same_id(json_object *a, json_object *b)
{
    if (!a || !b)
        return !a && !b;
    if (json_object_get_type(a) != json_object_get_type(b))
        return false;
    if (json_object_is_type(a, json_type_int))
        return json_object_get_int64(a) == json_object_get_int64(b) &&
               json_object_get_uint64(a) == json_object_get_uint64(b);
    if (json_object_is_type(a, json_type_string)) {
        const char *sa = json_object_get_string(a);
        size_t la = (size_t)json_object_get_string_len(a);

        /* A string that was not valid UTF-8 may come back repaired. */
        if (!utf8_valid((const unsigned char *)sa, la))
            return true;
        return la == (size_t)json_object_get_string_len(b) &&
               memcmp(sa, json_object_get_string(b), la) == 0;
    }
    return false;
}

/* Encode msg (taking it), check it is one valid line, and parse it back as a
 * reply; the caller checks the fields and frees *r. */
static void encode_and_parse(json_object *msg, dbl_reply_t *r)
{
    size_t len = 0;
    char *line;

    CHECK(msg != NULL);
    line = dbl_encode(msg, &len);
    CHECK(line != NULL);
    CHECK(len >= 3 && line[len - 1] == '\n' && line[len] == '\0');
    CHECK(memchr(line, '\n', len - 1) == NULL); /* exactly one line */
    CHECK(strlen(line) == len);                 /* no raw NUL */
    CHECK(utf8_valid((const unsigned char *)line, len));
    /* As the decoder would hand it over, or (either will do) with the '\n'. */
    CHECK(dbl_reply_parse(line, len - (len & 1), r) == 0);
    free(line);
    json_object_put(msg);
}

/* ---- requests, arguments, replies ------------------------------------ */

static const char *const keys[] = {
    "op",     "id",    "kind",  "template", "ttl_s", "wait_ms", "detach",
    "lease",  "clean", "force", "proto",    "client", "hash",   "ok",
};

static const struct {
    int64_t min, max;
} ranges[] = {
    {1, 86400},              /* ttl_s */
    {0, 600000},             /* wait_ms */
    {INT32_MIN, INT32_MAX},  /* proto */
    {INT64_MIN, INT64_MAX},  /* the saturation check */
};

static void check_args(const dbl_request_t *req, const char **strs)
{
    char err[256];

    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *s = NULL;
        bool b = false;
        int rc;

        err[0] = '\0';
        rc = dbl_arg_string(req, keys[k], &s, err, sizeof err);
        CHECK(rc == 0 || rc == -1);
        if (rc < 0)
            CHECK(err[0] != '\0' && s == NULL);
        strs[k] = s;

        for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
            int64_t n = 12345;

            err[0] = '\0';
            rc = dbl_arg_int(req, keys[k], ranges[i].min, ranges[i].max, &n, err, sizeof err);
            CHECK(rc == 0 || rc == -1);
            if (rc < 0)
                CHECK(err[0] != '\0' && n == 12345);
            else if (n != 12345)
                CHECK(n >= ranges[i].min && n <= ranges[i].max);
        }

        err[0] = '\0';
        rc = dbl_arg_bool(req, keys[k], &b, err, sizeof err);
        CHECK(rc == 0 || rc == -1);
        if (rc < 0)
            CHECK(err[0] != '\0');
    }
}

/* What the daemon does with a request: parse, read arguments, answer. */
static void handle_request(const char *line, size_t len, size_t msgcap)
{
    dbl_request_t req;
    dbl_reply_t r;
    char err[256], msg[257];
    const char *strs[sizeof keys / sizeof keys[0]];
    dbl_errcode_t rc;
    json_object *reply;

    rc = dbl_request_parse(line, len, &req, err, sizeof err);
    if (rc != DBL_E_NONE) {
        CHECK(rc == DBL_E_BAD_REQUEST);
        CHECK(err[0] != '\0');
        /* The session's bad_request reply, with whatever id was usable. */
        encode_and_parse(dbl_reply_error(req.id, DBL_E_BAD_REQUEST, err), &r);
        CHECK(!r.ok && r.code == DBL_E_BAD_REQUEST && same_id(req.id, r.id));
        dbl_reply_free(&r);
        dbl_request_free(&req);
        return;
    }

    /* The spec: invalid UTF-8 is a bad_request. */
    CHECK(utf8_valid((const unsigned char *)line, len));
    {
        json_object *op = NULL;

        CHECK(req.root && req.op && json_object_object_get_ex(req.root, "op", &op));
        CHECK(strlen(req.op) == (size_t)json_object_get_string_len(op)); /* no NUL */
    }
    CHECK(!req.id || json_object_is_type(req.id, json_type_int) ||
          json_object_is_type(req.id, json_type_string));

    /* The client's side of the same request: dbl_encode, then the daemon
     * parses it again. */
    {
        size_t elen = 0;
        char *enc = dbl_encode(req.root, &elen);
        dbl_request_t again;

        CHECK(enc != NULL);
        CHECK(dbl_request_parse(enc, elen, &again, err, sizeof err) == DBL_E_NONE);
        CHECK(strcmp(again.op, req.op) == 0);
        CHECK(same_id(req.id, again.id));
        dbl_request_free(&again);
        free(enc);
    }

    check_args(&req, strs);

    /* Success with result keys taken from the request. */
    reply = dbl_reply_ok(req.id);
    CHECK(reply != NULL);
    json_object_object_add(reply, "op", json_object_new_string(req.op));
    if (strs[2])
        json_object_object_add(reply, "kind", json_object_new_string(strs[2]));
    encode_and_parse(reply, &r);
    CHECK(r.ok && !r.is_event && same_id(req.id, r.id));
    dbl_reply_free(&r);

    /* Failures whose message quotes what the client sent, cut to fit a
     * fixed buffer as the daemon's snprintf calls do: the cut may fall inside
     * a multi-byte character. */
    snprintf(msg, msgcap, "unknown op \"%s\"; lease %s, template %s, client %s", req.op,
             strs[7] ? strs[7] : "-", strs[3] ? strs[3] : "-", strs[11] ? strs[11] : "-");
    {
        /* Every code, including the two out-of-range ones, across inputs. */
        dbl_errcode_t code = (dbl_errcode_t)(len % (DBL_E__COUNT + 1));
        dbl_errcode_t want = code == DBL_E_NONE || code == DBL_E__COUNT ? DBL_E_INTERNAL : code;

        encode_and_parse(dbl_reply_error(req.id, code, msg), &r);
        CHECK(!r.ok && !r.is_event && same_id(req.id, r.id));
        CHECK(r.code == want && strcmp(r.code_name, dbl_errcode_name(want)) == 0);
        if (utf8_valid((const unsigned char *)msg, strlen(msg)))
            CHECK(strcmp(r.message, msg) == 0);
        dbl_reply_free(&r);
    }
    if (len % 7 == 0) {
        encode_and_parse(dbl_reply_error(req.id, DBL_E_NOT_FOUND, NULL), &r);
        CHECK(strcmp(r.message, "not_found") == 0);
        dbl_reply_free(&r);
    }

    /* An event named by the (maybe cut) message, about the lease the
     * request named. */
    reply = dbl_event_new(msg);
    CHECK(reply != NULL);
    if (strs[7])
        json_object_object_add(reply, "lease", json_object_new_string(strs[7]));
    encode_and_parse(reply, &r);
    CHECK(r.is_event && r.event != NULL && r.id == NULL);
    if (utf8_valid((const unsigned char *)msg, strlen(msg)))
        CHECK(strcmp(r.event, msg) == 0);
    dbl_reply_free(&r);

    dbl_request_free(&req);
}

/* What the client does with a line from the daemon. */
static void handle_reply(const char *line, size_t len)
{
    dbl_reply_t r, again;
    size_t elen = 0;
    char *enc;

    if (dbl_reply_parse(line, len, &r) != 0) {
        CHECK(r.root == NULL);
        return;
    }
    CHECK(r.root != NULL);
    if (r.is_event) {
        CHECK(r.event != NULL);
    } else if (!r.ok) {
        CHECK(r.code_name != NULL && r.message != NULL);
        CHECK(r.code == dbl_errcode_from_name(r.code_name));
    }

    enc = dbl_encode(r.root, &elen);
    CHECK(enc != NULL);
    CHECK(memchr(enc, '\n', elen - 1) == NULL);
    CHECK(dbl_reply_parse(enc, elen, &again) == 0);
    CHECK(again.is_event == r.is_event && again.ok == r.ok && again.code == r.code);
    CHECK(same_id(r.id, again.id));
    dbl_reply_free(&again);
    free(enc);
    dbl_reply_free(&r);
}

static void handle_line(const char *line, size_t len, size_t msgcap)
{
    handle_request(line, len, msgcap);
    handle_reply(line, len);
}

/* ---- framing ----------------------------------------------------------- */

/* Where a reference splitter says the stream first breaks the limit: the
 * offset of the byte whose arrival makes it certain, or SIZE_MAX. */
static size_t first_violation(const char *s, size_t n, size_t max_line)
{
    size_t start = 0;

    while (start < n) {
        const char *nl = memchr(s + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - s) : n, raw = end - start, len = raw;

        if (raw > max_line + 1)
            return start + max_line + 1; /* too long even if a "\r\n" follows */
        if (!nl)
            return SIZE_MAX;             /* an unfinished line still within reach */
        if (len > 0 && s[end - 1] == '\r')
            len--;
        if (len > max_line)
            return end;
        start = end + 1;
    }
    return SIZE_MAX;
}

static size_t chunk_size(uint8_t c)
{
    return c < 0xC0 ? (size_t)c + 1 : ((size_t)c - 0xC0 + 1) * 4096;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags = 0, nchunks = 1, sizes[8] = {0xFF};
    size_t max_line = 0, msgcap = 256, repeat = 1, limit;
    const uint8_t *body = data;
    size_t body_len = size, n = 0, pos = 0, expect = 0, viol, feeds = 0, handled = 0;
    char *stream;
    dbl_decoder_t d;
    bool overflowed = false;

    if (size > 0 && data[0] == 0xFF) {
        if (size < HEADER + 1)
            return 0;
        flags = data[1];
        nchunks = (uint8_t)(((flags >> 2) & 7) + 1);
        if (size < (size_t)HEADER + nchunks)
            return 0;
        switch (flags & 3) {
        case 0: max_line = 0; break; /* the default */
        case 1: max_line = DBL_PROTO_MAX_LINE; break;
        case 2: max_line = (size_t)data[2] + 1; break;
        case 3: max_line = (size_t)data[2] * 64 + 1; break;
        }
        if (flags & 0x20)
            repeat = (size_t)data[3] + 1;
        msgcap = (size_t)data[4] + 1;
        memcpy(sizes, data + HEADER, nchunks);
        body = data + HEADER + nchunks;
        body_len = size - HEADER - nchunks;
    }

    /* The stream: the body, repeated, capped. */
    if (body_len && repeat > MAX_STREAM / body_len)
        repeat = MAX_STREAM / body_len ? MAX_STREAM / body_len : 1;
    n = body_len * repeat;
    stream = malloc(n ? n : 1);
    if (!stream)
        return 0;
    for (size_t i = 0; i < repeat; i++)
        memcpy(stream + i * body_len, body, body_len);

    dbl_decoder_init(&d, max_line);
    limit = d.max_line;
    CHECK(limit == (max_line ? max_line : DBL_PROTO_MAX_LINE));
    viol = first_violation(stream, n, limit);

    if (flags & 0x40)
        CHECK(dbl_decoder_feed(&d, stream, 0) == 0);

    while (pos < n && !overflowed) {
        size_t c = chunk_size(sizes[feeds % nchunks]);
        int rc;

        if (c > n - pos)
            c = n - pos;
        rc = dbl_decoder_feed(&d, stream + pos, c);
        feeds++;
        if (rc == -ENOMEM)
            break; /* not a bug; the fuzzer's malloc limit */
        if (rc == -E2BIG) {
            /* Refused in exactly the chunk that breaks the limit. */
            CHECK(viol >= pos && viol < pos + c);
            overflowed = true;
        } else {
            CHECK(rc == 0);
            CHECK(viol == SIZE_MAX || viol >= pos + c);
            /* Memory stays bounded by the limit plus what is complete. */
            CHECK(d.len - d.scan <= limit + 1);
        }
        pos += c;

        if (!overflowed && (flags & 0x80) && (feeds & 1) && pos < n)
            continue; /* let lines pile up */
        for (;;) {
            const char *line;
            size_t len;
            const char *nl;
            size_t want;

            rc = dbl_decoder_next(&d, &line, &len);
            if (overflowed) {
                CHECK(rc == -E2BIG);
                break;
            }
            if (rc == 0)
                break;
            CHECK(rc == 1);
            /* The reference: the next line of the stream, before pos. */
            nl = memchr(stream + expect, '\n', pos - expect);
            CHECK(nl != NULL);
            want = (size_t)(nl - (stream + expect));
            if (want > 0 && stream[expect + want - 1] == '\r')
                want--;
            CHECK(len == want && len <= limit);
            CHECK(memcmp(line, stream + expect, len) == 0);
            CHECK(line[len] == '\0');
            expect = (size_t)(nl - stream) + 1;

            if (handled++ < MAX_HANDLED)
                handle_line(line, len, msgcap);
        }
    }

    if (overflowed) {
        char b = '\n';

        CHECK(dbl_decoder_feed(&d, &b, 1) == -E2BIG);
    } else if (pos == n) {
        /* Every complete line came out. */
        CHECK(memchr(stream + expect, '\n', n - expect) == NULL);
    }
    dbl_decoder_free(&d);
    free(stream);
    return 0;
}
