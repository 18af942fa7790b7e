/* The agent's settings as read from the configuration (policy.c fills them
 * from the validated Lua settings table).  Plain data. */
#ifndef LMD_CONFIG_H
#define LMD_CONFIG_H

#include "lmdisc.h"

struct lmd_config {
    struct {
        bool enabled;
        uint16_t port;
        char *name;          /* NULL: default name */
        char *type;
        char *info;
        lmd_txt txt;
        unsigned ttl;        /* record TTL; 0: avahi's defaults */
    } announce;
    struct {
        double ttl;
        bool include_self;
    } registry;
    struct {
        double deadline;
        double memory_mb;
    } policy;
    struct {
        char *socket;
        unsigned socket_mode;
        char *listen;
        bool allow_remote;
    } api;
    struct {
        bool enabled;
        char *http;          /* URL, or NULL for tcp */
        uint16_t tcp;
        double interval, timeout;
        unsigned failures;
        bool status_mode;    /* on_fail = "status" */
    } health;
    struct {
        bool enabled;
        bool tcp;
        char *http;          /* path */
        double interval, timeout;
        unsigned failures, concurrency;
    } checks;
    int log_level;           /* -1: not set */
};

void lmd_config_clear(struct lmd_config *c);

#endif
