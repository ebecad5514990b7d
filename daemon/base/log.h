/* Structured logs (logfmt) to stderr, which the journal captures as is. */
#ifndef DBL_LOG_H
#define DBL_LOG_H

typedef enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_set_level(log_level_t level);
/* Is stderr the journal's stream ($JOURNAL_STREAM names its dev:ino)? Then
 * each line starts with sd-daemon's <N> priority. Call again after stderr
 * changes (daemonising sends it to a file). */
void log_detect_journal(void);
/* That prefix for a line of level written to stderr outside log_msg (the
 * "dbleased: ..." lines of start-up and --check-config); "" off the journal. */
const char *log_journal_prefix(log_level_t level);
int log_level_parse(const char *name, log_level_t *out);
/* comp: "pool", "server", …; the message is printf-formatted and quoted. */
void log_msg(log_level_t level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...) log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...) log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
