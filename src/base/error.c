/* lmd_strerror and the lmd_err helpers (see error.h). */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *lmd_strerror(int err)
{
    switch (err) {
    case LMD_OK: return "success";
    case LMD_EINVAL: return "invalid argument";
    case LMD_ENOMEM: return "out of memory";
    case LMD_EAVAHI: return "avahi reported an error";
    case LMD_ENODAEMON: return "avahi-daemon is not running";
    case LMD_ETIMEDOUT: return "timed out";
    case LMD_ETXT: return "invalid TXT data";
    case LMD_ECOLLISION: return "name collision";
    case LMD_EIO: return "input/output error";
    case LMD_ELUA: return "error in Lua script";
    case LMD_ENOTFOUND: return "not found";
    case LMD_EEXIST: return "already exists";
    case LMD_ELIMIT: return "limit reached";
    case LMD_EUNAVAIL: return "not available now";
    case LMD_EPERM: return "not allowed";
    }
    return "unknown error";
}

static int vformat(char *buf, size_t len, int code, const char *fmt, va_list ap)
{
    if (buf && len)
        vsnprintf(buf, len, fmt, ap);
    return code;
}

int lmd_err_set(lmd_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vformat(err->msg, sizeof err->msg, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *lmd_err_text(const lmd_err *err)
{
    return err->msg[0] ? err->msg : lmd_strerror(err->code);
}

int lmd_errbuf(char *buf, size_t len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(buf, len, code, fmt, ap);
    va_end(ap);
    return code;
}
