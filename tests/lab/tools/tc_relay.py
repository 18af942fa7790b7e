#!/usr/bin/env python3
"""A DNS server stand-in for the lab (test_wide_dns.lua): every UDP message
gets a truncated, empty answer (QR and TC set, same id), and every TCP
message is relayed to the real server and its answer back, so a client that
falls back to TCP on TC ends up talking to the real server.

    tc_relay.py LISTEN_ADDR UPSTREAM_ADDR      (port 53 on both)

Run it on a lab host only.  Prints "ready" once both sockets listen, then
one line per message."""
import socket
import sys
import threading

listen, upstream = sys.argv[1], sys.argv[2]


from dnswire import log, read_exact, read_msg  # noqa: E402  (tests/lab/tools)


def serve_udp(sock):
    while True:
        data, addr = sock.recvfrom(65535)
        if len(data) < 12:
            continue
        # header only: id, flags | QR | TC (opcode kept), rcode 0, no records
        sock.sendto(data[:2] + bytes([data[2] | 0x82, 0]) + bytes(8), addr)
        log("udp: answered truncated")


def relay(conn):
    with conn:
        try:
            msg = read_msg(conn)
            with socket.create_connection((upstream, 53), timeout=5) as up:
                up.sendall(len(msg).to_bytes(2, "big") + msg)
                answer = read_msg(up)
            conn.sendall(len(answer).to_bytes(2, "big") + answer)
            log("tcp: relayed %d bytes, answer %d bytes" % (len(msg), len(answer)))
        except (OSError, EOFError) as e:
            log("tcp: failed: %s" % e)


def main():
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((listen, 53))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((listen, 53))
    tcp.listen(8)
    threading.Thread(target=serve_udp, args=(udp,), daemon=True).start()
    log("ready")
    while True:
        conn, _ = tcp.accept()
        threading.Thread(target=relay, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
