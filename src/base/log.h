/* Logging: one event per line on stderr, peer data escaped so that no
 * terminal escape or raw newline from the network reaches the log. */
#ifndef LMD_LOG_H
#define LMD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

enum lmd_log_level { LMD_LOG_DEBUG, LMD_LOG_INFO, LMD_LOG_WARN, LMD_LOG_ERROR, LMD_LOG_OFF };

void lmd_log_set_level(enum lmd_log_level lvl);
enum lmd_log_level lmd_log_get_level(void);
/* Set by --log-level or $LOGLEVEL; the configuration's log{} does not
 * override it. */
void lmd_log_set_level_explicit(enum lmd_log_level lvl);
bool lmd_log_level_explicit(void);
/* Parse DEBUG, INFO, WARNING/WARN, ERROR, OFF (any case): the level, or
 * LMD_EINVAL if unknown. */
int lmd_log_parse_level(const char *s);
/* Apply $LOGLEVEL, as the original Python module did; returns LMD_EINVAL
 * and leaves the level alone if it is set to something unknown. */
int lmd_log_level_from_env(void);

void lmd_log(enum lmd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lmd_vlog(enum lmd_log_level lvl, const char *fmt, va_list ap);

#define lmd_debug(...) lmd_log(LMD_LOG_DEBUG, __VA_ARGS__)
#define lmd_info(...) lmd_log(LMD_LOG_INFO, __VA_ARGS__)
#define lmd_warn(...) lmd_log(LMD_LOG_WARN, __VA_ARGS__)
#define lmd_error(...) lmd_log(LMD_LOG_ERROR, __VA_ARGS__)

/* Escape bytes for a terminal or a log line: printable UTF-8 passes,
 * control characters become \n, \t, \xNN, invalid UTF-8 bytes \xNN, a
 * backslash \\, a double quote \", and characters that change how a
 * terminal shows text without showing themselves (C1 controls, bidi
 * overrides, zero-width characters) \u{XXXX}.  Always NUL-terminates
 * (truncates with "..." when out is too small); an escaped character needs
 * at most 8 bytes of out. */
char *lmd_escape(const void *data, size_t len, char *out, size_t outlen);
#define lmd_escape_str(s, out, outlen) lmd_escape((s), (s) ? strlen(s) : 0, (out), (outlen))

#endif
