/* NDJSON line splitter.
 *
 * Layout of d->buf:
 *
 *   [0, start)     lines already returned (space to reclaim)
 *   [start, scan)  complete lines, each ending in '\n', not yet returned
 *   [scan, len)    the unfinished line: no '\n' yet
 *
 * feed() is the only place that scans new bytes for '\n', so each byte is
 * scanned once however the stream is chunked, and line lengths are checked
 * before anything is stored: a peer cannot make us hold more than
 * max_line + 1 bytes (the +1 is a '\r' that a '\n' may still follow) of a
 * line that has not ended. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dbl_proto.h"

#define INITIAL_CAP 4096
/* An idle decoder gives back a buffer bigger than this, so that one large
 * request does not pin memory for the rest of a long-lived connection. */
#define IDLE_KEEP_CAP (64 * 1024)

void dbl_decoder_init(dbl_decoder_t *d, size_t max_line)
{
    memset(d, 0, sizeof(*d));
    d->max_line = max_line ? max_line : DBL_PROTO_MAX_LINE;
}

void dbl_decoder_free(dbl_decoder_t *d)
{
    free(d->buf);
    d->buf = NULL;
    d->len = d->cap = d->start = d->scan = 0;
}

static int poison(dbl_decoder_t *d)
{
    dbl_decoder_free(d); /* nothing stored is worth keeping: the peer is cut off */
    d->overflow = true;
    return -E2BIG;
}

/* Drop returned lines, moving the rest to the front when that saves memory
 * or a realloc. Pointers from next() die here, as the header allows. */
static void reclaim(dbl_decoder_t *d, size_t incoming)
{
    if (d->start == d->len) {
        d->start = d->scan = d->len = 0;
        if (d->cap > IDLE_KEEP_CAP)
            dbl_decoder_free(d);
        return;
    }
    if (d->start > 0 && (d->start > d->cap / 2 || d->len + incoming > d->cap)) {
        memmove(d->buf, d->buf + d->start, d->len - d->start);
        d->len -= d->start;
        d->scan -= d->start;
        d->start = 0;
    }
}

static int reserve(dbl_decoder_t *d, size_t need)
{
    size_t cap = d->cap ? d->cap : INITIAL_CAP;
    char *p;

    if (need <= d->cap)
        return 0;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    p = realloc(d->buf, cap);
    if (!p)
        return -ENOMEM;
    d->buf = p;
    d->cap = cap;
    return 0;
}

/* Checks every line that data ends or extends; sets *last_nl to the last
 * '\n' in data (NULL if none). Returns false if a line is over the limit. */
static bool lines_fit(const dbl_decoder_t *d, const char *data, size_t n, const char **last_nl)
{
    const char *p = data, *end = data + n;
    size_t cur = d->len - d->scan; /* bytes of the unfinished line already held */
    char prev = cur ? d->buf[d->len - 1] : '\0';

    *last_nl = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t linelen;

        if (!nl)
            return cur + (size_t)(end - p) <= d->max_line + 1;
        linelen = cur + (size_t)(nl - p);
        if (linelen > 0 && (nl > p ? nl[-1] : prev) == '\r')
            linelen--;
        if (linelen > d->max_line)
            return false;
        *last_nl = nl;
        cur = 0;
        p = nl + 1;
    }
    return true;
}

int dbl_decoder_feed(dbl_decoder_t *d, const void *data, size_t n)
{
    const char *last_nl;
    size_t old_len;

    if (d->overflow)
        return -E2BIG;
    if (n == 0)
        return 0;
    if (!lines_fit(d, data, n, &last_nl))
        return poison(d);

    reclaim(d, n);
    if (reserve(d, d->len + n) < 0)
        return -ENOMEM; /* nothing appended: the stream is still consistent */
    old_len = d->len;
    memcpy(d->buf + d->len, data, n);
    d->len += n;
    if (last_nl)
        d->scan = old_len + (size_t)(last_nl - (const char *)data) + 1;
    return 0;
}

int dbl_decoder_next(dbl_decoder_t *d, const char **line, size_t *len)
{
    char *first, *nl;
    size_t n;

    if (d->overflow)
        return -E2BIG;
    if (d->start == d->scan)
        return 0;

    /* feed() proved a '\n' lies before scan. */
    first = d->buf + d->start;
    nl = memchr(first, '\n', d->scan - d->start);
    n = (size_t)(nl - first);
    if (n > 0 && first[n - 1] == '\r')
        n--;
    /* NUL-terminate in place (over the '\r' or '\n'): a free convenience for
     * callers that hand the line to C string functions. */
    first[n] = '\0';
    d->start = (size_t)(nl - d->buf) + 1;

    *line = first;
    *len = n;
    return 1;
}
