/* Option structs of any layout (include/lmdisc.h, "ABI rules"). */
#include "lib/abi.h"
#include "lmdisc.h"

#include <string.h>

int lmd_lib_opts_read(void *dst, size_t known, size_t first, const void *src)
{
    memset(dst, 0, known);
    if (!src)
        return 0;
    size_t size;
    memcpy(&size, src, sizeof size);
    if (size == 0)
        size = first;
    if (size < first)
        return LMD_EINVAL;
    const unsigned char *tail = src;
    for (size_t i = known; i < size; i++)
        if (tail[i] != 0)
            return LMD_EINVAL;
    memcpy(dst, src, size < known ? size : known);
    return 0;
}
