#!/usr/bin/env python3
"""A zone transfer gone wrong, for the lab (test_wide_dns.lua): a TCP-only
DNS server stand-in that relays each request to the real server, passes the
first message of its answer back, and then, by MODE:

    cut      closes the connection (a server that stops mid-transfer)
    stall    keeps the connection open and sends nothing more
    garbage  sends a message that is not DNS (5 bytes)
    unsigned sends the second message without its TSIG record

    xfr_cut.py LISTEN_ADDR UPSTREAM_ADDR MODE      (port 53 on both)

Run it on a lab host only.  Prints "ready" once it listens, then one line
per connection."""
import socket
import sys
import threading
import time

listen, upstream, mode = sys.argv[1], sys.argv[2], sys.argv[3]


from dnswire import log, read_exact, read_msg  # noqa: E402  (tests/lab/tools)


def skip_name(m, i):
    while True:
        n = m[i]
        if n >= 0xC0:
            return i + 2
        i += 1 + n
        if n == 0:
            return i


def strip_tsig(m):
    """The message without its last additional record (the TSIG)."""
    qd, an, ns, ar = (int.from_bytes(m[k:k + 2], "big") for k in (4, 6, 8, 10))
    i = 12
    for _ in range(qd):
        i = skip_name(m, i) + 4
    start = i
    for _ in range(an + ns + ar):
        start = i
        i = skip_name(m, i) + 8
        i += 2 + int.from_bytes(m[i:i + 2], "big")
    return m[:10] + (ar - 1).to_bytes(2, "big") + m[12:start]


def serve(conn):
    try:
        msg = read_msg(conn)
        with socket.create_connection((upstream, 53), timeout=5) as up:
            up.sendall(len(msg).to_bytes(2, "big") + msg)
            first = read_msg(up)
            second = read_msg(up) if mode == "unsigned" else None
        conn.sendall(len(first).to_bytes(2, "big") + first)
        if mode == "unsigned":
            second = strip_tsig(second)
            conn.sendall(len(second).to_bytes(2, "big") + second)
        elif mode == "garbage":
            conn.sendall(b"\x00\x05junk!")
        elif mode == "stall":
            time.sleep(30)
        log("tcp: %s after the first message (%d bytes)" % (mode, len(first)))
    except (OSError, EOFError) as e:
        log("tcp: failed: %s" % e)
    finally:
        conn.close()


def main():
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((listen, 53))
    tcp.listen(8)
    log("ready")
    while True:
        conn, _ = tcp.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
