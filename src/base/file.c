/* Reading the small files a user names (keys, certificates): see file.h. */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int lmd_read_small_file(const char *path, char *buf, size_t cap, size_t *len, mode_t *mode, lmd_err *err)
{
    /* O_NONBLOCK: a FIFO in place of the file must not hang us before the
     * S_ISREG check; regular files ignore it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return lmd_err_set(err, LMD_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st = {0};
    int rc = 0;
    /* fstat on what we opened: no window between checking and reading. */
    if (fstat(fd, &st) != 0)
        rc = lmd_err_set(err, LMD_EIO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = lmd_err_set(err, LMD_EIO, "%s: not a regular file", path);
    else if ((size_t)st.st_size >= cap)
        rc = lmd_err_set(err, LMD_EIO, "%s: %lld bytes is too big (at most %zu)", path, (long long)st.st_size,
                         cap - 1);
    size_t n = 0;
    while (rc == 0 && n < cap - 1) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = lmd_err_set(err, LMD_EIO, "%s: %s", path, strerror(errno));
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    if (mode)
        *mode = st.st_mode;
    return rc;
}

int lmd_secret_mode_check(const char *path, mode_t mode, const char *what, const char *why, lmd_err *err)
{
    unsigned m = (unsigned)(mode & 07777);
    if (!(m & 0027))
        return 0;
    return lmd_err_set(err, LMD_EINVAL,
                       "%s: mode %04o lets %s this %s%s%s; make it 0600 (chmod 600 %s), or 0640 with the agent's "
                       "group (chown root:lmdisc %s; chmod 640 %s)",
                       path, m, (m & 0007) ? "users outside its owner and group read or change" : "its group change",
                       what, why && *why ? ": " : "", why ? why : "", path, path, path);
}
