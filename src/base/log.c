#include "base/log.h"
#include "base/util.h"
#include "lmdisc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char *escape(const void *data, size_t len, char *out, size_t outlen, bool backslash);

static enum lmd_log_level current = LMD_LOG_INFO;
static bool explicit_level;

void lmd_log_set_level(enum lmd_log_level lvl) { current = lvl; }
void lmd_log_set_level_explicit(enum lmd_log_level lvl)
{
    current = lvl;
    explicit_level = true;
}
bool lmd_log_level_explicit(void) { return explicit_level; }
enum lmd_log_level lmd_log_get_level(void) { return current; }

int lmd_log_parse_level(const char *s)
{
    static const struct { const char *name; enum lmd_log_level lvl; } names[] = {
        {"debug", LMD_LOG_DEBUG}, {"info", LMD_LOG_INFO},   {"warning", LMD_LOG_WARN},
        {"warn", LMD_LOG_WARN},   {"error", LMD_LOG_ERROR}, {"off", LMD_LOG_OFF},
    };
    if (!s)
        return LMD_EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0)
            return (int)names[i].lvl;
    return LMD_EINVAL;
}

int lmd_log_level_from_env(void)
{
    const char *s = getenv("LOGLEVEL");
    if (!s || !*s)
        return 0;
    int lvl = lmd_log_parse_level(s);
    if (lvl < 0)
        return lvl;
    current = (enum lmd_log_level)lvl;
    explicit_level = true;
    return 0;
}

void lmd_vlog(enum lmd_log_level lvl, const char *fmt, va_list ap)
{
    static const char *const tag[] = {"debug", "info", "warning", "error"};
    _Static_assert(sizeof tag / sizeof tag[0] == LMD_LOG_OFF, "a tag for each level below LMD_LOG_OFF");
    if (lvl < current || lvl >= LMD_LOG_OFF)
        return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* Callers escape peer data (lmd_escape); what is left to do here is to
     * make sure no control character of any origin reaches the log, without
     * escaping the callers' backslashes a second time. */
    char safe[4096];
    escape(msg, strlen(msg), safe, sizeof safe, false);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lmdisc %s: %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            tag[lvl], safe);
}

void lmd_log(enum lmd_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lmd_vlog(lvl, fmt, ap);
    va_end(ap);
}

/* Code points that change how a terminal shows text without showing
 * themselves: C1 controls (CSI, OSC...), bidi embeddings, overrides and
 * isolates, zero-width and invisible characters, line/paragraph separators,
 * tags.  Written as \u{XXXX}, so that a name cannot hide or reorder what
 * follows it, or pass for another. */
static bool invisible(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0xad || cp == 0x34f || cp == 0x61c || cp == 0x115f ||
           cp == 0x1160 || cp == 0x17b4 || cp == 0x17b5 || cp == 0x180e || (cp >= 0x200b && cp <= 0x200f) ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) || cp == 0x3164 || cp == 0xfeff ||
           cp == 0xffa0 || (cp >= 0xfff0 && cp <= 0xfffb) || (cp >= 0xe0000 && cp <= 0xe0fff);
}

static uint32_t decode(const unsigned char *p, size_t n)
{
    uint32_t cp = n == 2 ? p[0] & 0x1f : n == 3 ? p[0] & 0x0f : p[0] & 0x07;
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (p[i] & 0x3f);
    return cp;
}

static char *escape(const void *data, size_t len, char *out, size_t outlen, bool backslash)
{
    const unsigned char *p = data;
    size_t o = 0;
    if (outlen == 0)
        return out;
    for (size_t i = 0; i < len;) {
        char buf[16];
        size_t n;
        size_t u = lmd_utf8_seq_len(p + i, len - i);
        if (u > 1 && invisible(decode(p + i, u))) {
            n = (size_t)snprintf(buf, sizeof buf, "\\u{%04x}", (unsigned)decode(p + i, u));
        } else if (u > 1) {
            memcpy(buf, p + i, u);
            n = u;
        } else if (u == 1 && p[i] == '"' && backslash) {
            memcpy(buf, "\\\"", n = 2); /* names are quoted in logs and text: unambiguous */
        } else if (u == 1 && p[i] >= 0x20 && p[i] != 0x7f && (p[i] != '\\' || !backslash)) {
            buf[0] = (char)p[i];
            n = 1;
        } else if (p[i] == '\n') {
            memcpy(buf, "\\n", n = 2);
        } else if (p[i] == '\t') {
            memcpy(buf, "\\t", n = 2);
        } else if (p[i] == '\r') {
            memcpy(buf, "\\r", n = 2);
        } else if (p[i] == '\\') {
            memcpy(buf, "\\\\", n = 2);
        } else {
            n = (size_t)snprintf(buf, sizeof buf, "\\x%02x", p[i]);
        }
        if (o + n + 4 > outlen) {
            if (outlen >= 4) {
                o = o + 3 < outlen ? o : outlen - 4;
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, buf, n);
        o += n;
        i += u ? u : 1;
    }
    out[o < outlen ? o : outlen - 1] = '\0';
    return out;
}

char *lmd_escape(const void *data, size_t len, char *out, size_t outlen)
{
    return escape(data, len, out, outlen, true);
}
