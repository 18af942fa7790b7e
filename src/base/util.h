/* Small helpers shared by every module: time, UTF-8, base64, strings. */
#ifndef LMD_UTIL_H
#define LMD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Seconds on CLOCK_MONOTONIC; for deadlines and durations. */
double lmd_now_mono(void);
/* Seconds since the epoch; for what users read (first/last seen). */
double lmd_now_wall(void);

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if p starts an
 * invalid one.  A lone ASCII byte, control characters included, is 1. */
size_t lmd_utf8_seq_len(const unsigned char *p, size_t avail);
bool lmd_utf8_valid(const void *data, size_t len);
/* Copy with every invalid UTF-8 byte replaced by U+FFFD; malloc'd. */
char *lmd_utf8_sanitize(const void *data, size_t len);

/* Standard base64 with padding; malloc'd, NUL-terminated. */
char *lmd_base64(const void *data, size_t len);

char *lmd_strdup(const char *s);
char *lmd_strndup(const void *s, size_t n);
void *lmd_memdup(const void *p, size_t n);
/* A long-running process's allocator: one arena for all threads (the
 * resolver and watchdog threads allocate little; an arena each would keep
 * its own free pages), call once before any thread starts. */
void lmd_mem_tune(void);
/* Give the pages free() left in the heap back to the system (after a
 * burst, once idle). */
void lmd_mem_trim(void);
/* NULL-safe comparison. */
bool lmd_streq(const char *a, const char *b);

#define LMD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Take x out of the singly linked list whose head pointer is at head (a
 * struct T **, the nodes linked through their next); nothing when x is not
 * in it. */
#define LMD_LIST_UNLINK(head, x)                                                                                     \
    do {                                                                                                             \
        for (__typeof__(head) lmd_pp_ = (head); *lmd_pp_; lmd_pp_ = &(*lmd_pp_)->next)                               \
            if (*lmd_pp_ == (x)) {                                                                                   \
                *lmd_pp_ = (x)->next;                                                                                \
                break;                                                                                               \
            }                                                                                                        \
    } while (0)

#endif
