/* GET / : the fleet page (fleet.html, compiled in by embed_file.cmake),
 * on the TCP listener and the Unix socket alike.  The page reads the API
 * from its own origin and changes nothing; the headers keep it that way:
 * no script, style or connection from anywhere else, no framing. */
#include "api/internal.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stddef.h>

extern const unsigned char lmd_fleet_html[];
extern const size_t lmd_fleet_html_len;

void lmd_api_handle_fleet(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (!b || evbuffer_add_reference(b, lmd_fleet_html, lmd_fleet_html_len, NULL, NULL) != 0) {
        if (b)
            evbuffer_free(b);
        lmd_api_reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                      "frame-ancestors 'none'");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}
