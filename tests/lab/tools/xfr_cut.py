#!/usr/bin/env python3
"""A zone transfer gone wrong, for the lab (test_wide_dns.lua): a TCP-only
DNS server stand-in that relays each request to the real server, passes the
first message of its answer back, and then, by MODE:

    cut      closes the connection (a server that stops mid-transfer)
    stall    keeps the connection open and sends nothing more
    garbage  sends a message that is not DNS (5 bytes)

    xfr_cut.py LISTEN_ADDR UPSTREAM_ADDR MODE      (port 53 on both)

Run it on a lab host only.  Prints "ready" once it listens, then one line
per connection."""
import socket
import sys
import threading
import time

listen, upstream, mode = sys.argv[1], sys.argv[2], sys.argv[3]


def log(msg):
    print(msg, flush=True)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def read_msg(sock):
    n = int.from_bytes(read_exact(sock, 2), "big")
    return read_exact(sock, n)


def serve(conn):
    try:
        msg = read_msg(conn)
        with socket.create_connection((upstream, 53), timeout=5) as up:
            up.sendall(len(msg).to_bytes(2, "big") + msg)
            first = read_msg(up)
        conn.sendall(len(first).to_bytes(2, "big") + first)
        if mode == "garbage":
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
