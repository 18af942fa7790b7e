/* src/dns/tcp.c: the DNS-over-TCP client that updates, queries and zone
 * transfers share (no network: the server's end is the other end of a
 * socketpair, or a Unix socket in a temporary directory).  The framing of
 * the request, answers read whole however they arrive, one message per
 * wake-up, the biggest and the empty message, the owner stopping, the
 * server closing or going silent, and the request too big for a frame. */
#include "dns/internal.h"

#include "base/util.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../check.h"

/* What the owner saw. */
struct seen {
    lmd_dns_tcp *t;
    size_t n;              /* messages */
    uint8_t last[65536];   /* the last one */
    size_t last_len;
    char first[64];        /* the first one, as text */
    bool ended;
    lmd_dns_tcp_end end;
    bool free_on_msg;      /* the owner has what it wanted after one message */
};

static void on_msg(const uint8_t *wire, size_t len, void *arg)
{
    struct seen *s = arg;
    if (s->n == 0)
        snprintf(s->first, sizeof s->first, "%.*s", (int)(len < 63 ? len : 63), (const char *)wire);
    s->n++;
    memcpy(s->last, wire, len);
    s->last_len = len;
    if (s->free_on_msg) {
        lmd_dns_tcp_free(s->t);
        s->t = NULL;
    }
}

static void on_fail(const lmd_dns_tcp_end *end, void *arg)
{
    struct seen *s = arg;
    s->ended = true;
    s->end = *end;
}

/* One turn of the loop (something is due: data, or a timer). */
static void turn(struct event_base *base)
{
    event_base_loop(base, EVLOOP_ONCE);
}

/* Turns until the exchange ended, at most for secs. */
static void run_to_end(struct event_base *base, struct seen *s, double secs)
{
    double until = lmd_now_mono() + secs;
    while (!s->ended && lmd_now_mono() < until)
        turn(base);
}

static void put(int fd, const void *p, size_t len)
{
    CHECK(write(fd, p, len) == (ssize_t)len, "the server's end writes %zu bytes", len);
}

/* A connected pair: *a for the client (non-blocking), *b the server's. */
static void pair(int *a, int *b)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
    CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0, "non-blocking");
    *a = sv[0];
    *b = sv[1];
}

/* Attach to a new pair and run until the request is written; *b gets the
 * server's end, the request read from it. */
static lmd_dns_tcp *start(struct event_base *base, struct seen *s, int *b, double secs)
{
    int a;
    pair(&a, b);
    memset(s, 0, sizeof *s);
    lmd_dns_tcp_end e;
    CHECK(lmd_dns_tcp_attach(base, a, (const uint8_t *)"query", 5, lmd_now_mono() + secs, on_msg, on_fail, s, &s->t,
                             &e) == 0 && s->t,
          "attached");
    uint8_t req[16];
    turn(base); /* writable: connected, the request written */
    CHECK(read(*b, req, sizeof req) == 7 && memcmp(req, "\0\5query", 7) == 0, "the request, after its length");
    return s->t;
}

static void test_frame(void)
{
    static uint8_t big[65536];
    uint8_t *f;
    size_t n;
    CHECK(lmd_dns_tcp_frame(big, 65535, &f, &n) == 0 && n == 65537 && f[0] == 0xff && f[1] == 0xff,
          "65,535 bytes: the biggest frame");
    free(f);
    CHECK(lmd_dns_tcp_frame(big, 65536, &f, &n) == LMD_EINVAL && !f && n == 0, "65,536 bytes: no frame");
    CHECK(lmd_dns_tcp_frame(NULL, 0, &f, &n) == 0 && n == 2 && f[0] == 0 && f[1] == 0, "the empty message");
    free(f);
    CHECK(lmd_dns_tcp_frame((const uint8_t *)"abc", 3, &f, &n) == 0 && n == 5 && memcmp(f, "\0\3abc", 5) == 0,
          "length in network order, then the message");
    free(f);
}

static void test_request_and_answer(struct event_base *base)
{
    struct seen s;
    int b;
    start(base, &s, &b, 5);
    /* the answer a byte at a time: nothing until the last */
    static const uint8_t ans[] = {0, 5, 'h', 'e', 'l', 'l', 'o'};
    for (size_t i = 0; i < sizeof ans; i++) {
        CHECK(s.n == 0, "no message after %zu bytes", i);
        put(b, ans + i, 1);
        turn(base);
    }
    CHECK(s.n == 1 && s.last_len == 5 && memcmp(s.last, "hello", 5) == 0, "one message, whole: %zu", s.n);
    CHECK(!s.ended, "still reading (the owner did not free it)");
    /* two in one write: one per wake-up, in order */
    put(b, "\0\3abc\0\5defgh", 12);
    turn(base);
    CHECK(s.n == 2 && s.last_len == 3 && memcmp(s.last, "abc", 3) == 0, "the first of two: %zu", s.n);
    turn(base);
    CHECK(s.n == 3 && s.last_len == 5 && memcmp(s.last, "defgh", 5) == 0, "then the second: %zu", s.n);
    /* an empty message is a message; the framing goes on after it */
    put(b, "\0\0\0\1x", 5);
    turn(base);
    turn(base);
    CHECK(s.n == 5 && s.last_len == 1 && s.last[0] == 'x', "the empty message, then x: %zu", s.n);
    lmd_dns_tcp_free(s.t);
    close(b);
}

static void test_biggest_message(struct event_base *base)
{
    struct seen s;
    int b;
    start(base, &s, &b, 5);
    static uint8_t frame[65537];
    frame[0] = frame[1] = 0xff;
    for (size_t i = 2; i < sizeof frame; i++)
        frame[i] = (uint8_t)(i * 7);
    CHECK(fcntl(b, F_SETFL, O_NONBLOCK) == 0, "non-blocking");
    size_t done = 0;
    for (int i = 0; i < 10000 && s.n == 0 && !s.ended; i++) {
        ssize_t w = done < sizeof frame ? write(b, frame + done, sizeof frame - done) : 0;
        done += w > 0 ? (size_t)w : 0;
        turn(base);
    }
    CHECK(s.n == 1 && s.last_len == 65535 && memcmp(s.last, frame + 2, 65535) == 0, "65,535 bytes, whole");
    lmd_dns_tcp_free(s.t);
    close(b);
}

static void test_owner_stops(struct event_base *base)
{
    struct seen s;
    int b;
    start(base, &s, &b, 5);
    s.free_on_msg = true;
    put(b, "\0\3one\0\3two", 10);
    turn(base);
    CHECK(s.n == 1 && !s.t && strcmp(s.first, "one") == 0, "the first message, and the owner freed it");
    turn(base); /* nothing of the exchange runs any more (ASan would say) */
    CHECK(s.n == 1 && !s.ended, "nothing after: %zu", s.n);
    close(b);
}

static void test_server_closes(struct event_base *base)
{
    struct seen s;
    int b;
    /* mid-message, after a complete one */
    start(base, &s, &b, 5);
    put(b, "\0\2ok\0\12abc", 9);
    close(b);
    run_to_end(base, &s, 5);
    CHECK(s.ended && s.end.rc == LMD_EIO && s.end.step == LMD_DNS_TCP_READ && s.end.sys == 0,
          "closed: EIO while reading, no errno (%d, %d, %d)", s.end.rc, (int)s.end.step, s.end.sys);
    CHECK(s.n == 1 && s.end.messages == 1 && s.end.partial == 5, "one message and 5 bytes of the next: %zu, %zu",
          s.end.messages, s.end.partial);
    lmd_dns_tcp_free(s.t);
    /* before answering */
    start(base, &s, &b, 5);
    close(b);
    run_to_end(base, &s, 5);
    CHECK(s.ended && s.end.rc == LMD_EIO && s.end.messages == 0 && s.end.partial == 0, "closed before answering");
    lmd_dns_tcp_free(s.t);
}

static void test_deadline(struct event_base *base)
{
    struct seen s;
    int b;
    double t0 = lmd_now_mono();
    start(base, &s, &b, 0.3);
    put(b, "\0\11part", 6); /* 4 of 9 bytes, then silence */
    run_to_end(base, &s, 5);
    double took = lmd_now_mono() - t0;
    CHECK(s.ended && s.end.rc == LMD_ETIMEDOUT && s.end.step == LMD_DNS_TCP_READ && s.end.partial == 6,
          "the deadline, while reading, 6 bytes in (%d, %zu)", s.end.rc, s.end.partial);
    CHECK(took >= 0.29 && took < 2, "at the deadline: %.2f s", took);
    lmd_dns_tcp_free(s.t);
    close(b);
}

static void test_write_fails(struct event_base *base)
{
    int a, b;
    pair(&a, &b);
    close(b);
    struct seen s = {0};
    lmd_dns_tcp_end e;
    CHECK(lmd_dns_tcp_attach(base, a, (const uint8_t *)"q", 1, lmd_now_mono() + 5, on_msg, on_fail, &s, &s.t, &e) == 0,
          "attached");
    run_to_end(base, &s, 5);
    CHECK(s.ended && s.end.rc == LMD_EIO && s.end.step == LMD_DNS_TCP_WRITE && s.end.sys == EPIPE,
          "nobody reads: EPIPE while writing (%d, %d, %s)", s.end.rc, (int)s.end.step, strerror(s.end.sys));
    lmd_dns_tcp_free(s.t);
}

static void test_too_big_a_request(struct event_base *base)
{
    int a, b;
    pair(&a, &b);
    static uint8_t big[65536];
    struct seen s = {0};
    lmd_dns_tcp_end e;
    lmd_dns_tcp *t = NULL;
    CHECK(lmd_dns_tcp_attach(base, a, big, sizeof big, lmd_now_mono() + 5, on_msg, on_fail, &s, &t, &e) == LMD_EINVAL &&
              !t && e.rc == LMD_EINVAL,
          "a request past 65,535 bytes is refused");
    CHECK(fcntl(a, F_GETFD) == -1 && errno == EBADF, "the socket was taken over (closed)");
    close(b);
}

static void test_open(struct event_base *base)
{
    char dir[] = "/tmp/lmd-tcp-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    struct sockaddr_storage ss = {0};
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    un->sun_family = AF_UNIX;
    snprintf(un->sun_path, sizeof un->sun_path, "%s/server", dir);
    socklen_t alen = sizeof *un;
    struct seen s = {0};
    lmd_dns_tcp_end e;
    /* nobody there: the connect fails at once, no callback */
    CHECK(lmd_dns_tcp_open(base, &ss, alen, (const uint8_t *)"q", 1, lmd_now_mono() + 5, on_msg, on_fail, &s, &s.t,
                           &e) == LMD_EIO &&
              !s.t && e.step == LMD_DNS_TCP_CONNECT && e.sys == ENOENT,
          "no server: EIO while connecting (%d, %s)", (int)e.step, strerror(e.sys));
    /* a server: one exchange */
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0 && bind(l, (struct sockaddr *)un, alen) == 0 && listen(l, 1) == 0, "listening");
    CHECK(lmd_dns_tcp_open(base, &ss, alen, (const uint8_t *)"q", 1, lmd_now_mono() + 5, on_msg, on_fail, &s, &s.t,
                           &e) == 0 && s.t,
          "connecting");
    int b = accept(l, NULL, NULL);
    turn(base);
    uint8_t req[8];
    CHECK(read(b, req, sizeof req) == 3 && memcmp(req, "\0\1q", 3) == 0, "the request");
    put(b, "\0\2ok", 4);
    turn(base);
    CHECK(s.n == 1 && strcmp(s.first, "ok") == 0, "the answer");
    lmd_dns_tcp_free(s.t);
    close(b);
    close(l);
    unlink(un->sun_path);
    rmdir(dir);
}

int main(void)
{
    struct event_base *base = event_base_new();
    CHECK(base != NULL, "event base");
    test_frame();
    test_request_and_answer(base);
    test_biggest_message(base);
    test_owner_stops(base);
    test_server_closes(base);
    test_deadline(base);
    test_write_fails(base);
    test_too_big_a_request(base);
    test_open(base);
    event_base_free(base);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
