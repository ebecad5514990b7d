#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static log_level_t min_level = LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level)
{
    min_level = level;
}

/* sd-daemon.h's SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR by level, or "" when
 * stderr is not the journal (a terminal, or the log file of a daemon). */
static const char *const journal_prefix[] = {"<7>", "<6>", "<4>", "<3>"};
static const char *const no_prefix[] = {"", "", "", ""};
static const char *const *prefix = no_prefix;

void log_detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    bool journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
                   (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    prefix = journal ? journal_prefix : no_prefix;
}

const char *log_journal_prefix(log_level_t level)
{
    return prefix[level];
}

int log_level_parse(const char *name, log_level_t *out)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void log_msg(log_level_t level, const char *comp, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    /* Quote the message so a line stays one logfmt record. */
    char quoted[2100];
    size_t o = 0;
    for (const char *p = msg; *p && o < sizeof quoted - 5; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            quoted[o++] = '\\';
        if (c == '\n')
            quoted[o++] = ' ';
        else if (c < 0x20 || c == 0x7f) /* a client's name must not drive a terminal */
            o += (size_t)snprintf(quoted + o, 5, "\\x%02x", c);
        else
            quoted[o++] = *p;
    }
    quoted[o] = '\0';

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%sts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=\"%s\"\n",
            prefix[level], tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, names[level], comp, quoted);
}
