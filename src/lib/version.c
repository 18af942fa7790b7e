/* The version of the library loaded, as against LMD_VERSION, the one a
 * program was compiled with (both from CMakeLists.txt's project()). */
#include "lmdisc.h"

const char *lmd_version(void) { return LMD_VERSION; }
