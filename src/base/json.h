/* JSON documents (jansson) for nodes and node lists.
 *
 * Names and TXT values are arbitrary bytes on the wire, JSON strings are
 * UTF-8.  Representation: every string is valid UTF-8, with each byte that is
 * not part of a valid sequence replaced by U+FFFD; a TXT value that was not
 * valid UTF-8 is also given exactly, base64-encoded, under "txt_base64".  A
 * bare TXT key (no '=') is the JSON value true. */
#ifndef LMD_JSON_H
#define LMD_JSON_H

#include "lmdisc.h"
#include <jansson.h>

json_t *lmd_json_bytes(const void *data, size_t len);
json_t *lmd_json_str(const char *s); /* NULL -> JSON null */
json_t *lmd_json_node(const lmd_node_info *n);
json_t *lmd_json_node_list(const lmd_node_list *l);
/* Serialize compactly (or indented), ASCII only, into a malloc'd string. */
char *lmd_json_dump(json_t *j, bool pretty);

#endif
