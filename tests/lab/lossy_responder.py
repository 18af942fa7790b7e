#!/usr/bin/python3
"""An mDNS responder whose first answers to a named question are lost, for
the one-shot scan's lab suite (tests/lab/test_discover_complete.lua).

Runs ONLY inside a lab host (tests/lab/lab exec HOST ...): it refuses to run in
the root network namespace, whose eth0 may be a shared network.

  lossy_responder.py PREFIX COUNT PORT SRC4 SRC6 LOSE SECONDS

Publishes COUNT services PREFIX-0001.. of _lmserv._tcp.local on host
PREFIX-host.local (SRC4, SRC6), ports PORT.. .  A query for the type's PTR is
answered at once with the PTR records alone (no additional records: RFC 6763
section 12 makes them a SHOULD).  A question naming one instance (SRV, TXT or
ANY) goes unanswered the first LOSE times it is asked over a protocol (the
first answers lost), then is answered with its SRV and TXT (as asked) and the
host's A and AAAA as additional records; the host's addresses are answered
always.  Answers go by multicast over the protocol the query came in on.
Prints "ready" once listening, one line "asked NAME TYPE FAMILY N" per named
question, and exits after SECONDS.
"""
import os
import select
import socket
import struct
import sys
import time


def refuse_root_netns():
    root = None
    for pid in (1, 2):
        try:
            root = os.readlink("/proc/%d/ns/net" % pid)
            break
        except OSError:
            continue
    if root is None or os.readlink("/proc/self/ns/net") == root:
        sys.exit("lossy_responder.py: refusing to run in the root network namespace (use tests/lab/lab exec)")


refuse_root_netns()

from scapy.all import DNS, DNSQR, DNSRR, DNSRRSRV  # noqa: E402

TYPE = "_lmserv._tcp.local."
FLUSH = 0x8001
IFACE = "eth0"
PTR, TXT, SRV, A, AAAA, ANY = 12, 16, 33, 1, 28, 255


def sockets():
    ifindex = socket.if_nametoindex(IFACE)
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s4.bind(("224.0.0.251", 5353))
    mreqn = socket.inet_aton("224.0.0.251") + socket.inet_aton("0.0.0.0") + struct.pack("=i", ifindex)
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s6.bind(("ff02::fb", 5353, 0, ifindex))
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                  socket.inet_pton(socket.AF_INET6, "ff02::fb") + struct.pack("=I", ifindex))
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    return s4, s6, ("224.0.0.251", 5353), ("ff02::fb", 5353, 0, ifindex)


def chain(rrs):
    out = rrs[0]
    for rr in rrs[1:]:
        out = out / rr
    return out


def name_of(q):
    n = q.qname.decode("utf-8", "replace") if isinstance(q.qname, bytes) else q.qname
    return n if n.endswith(".") else n + "."


def main(argv):
    if len(argv) != 8:
        sys.exit(__doc__)
    prefix, count, port, src4, src6, lose, seconds = argv[1], int(argv[2]), int(argv[3]), argv[4], argv[5], \
        int(argv[6]), float(argv[7])
    host = "%s-host.local." % prefix
    inst = {}
    for i in range(1, count + 1):
        inst[("%s-%04d.%s" % (prefix, i, TYPE)).lower()] = ("%s-%04d.%s" % (prefix, i, TYPE), port + i - 1)
    addrs = [DNSRR(rrname=host, type="A", rclass=FLUSH, ttl=120, rdata=src4),
             DNSRR(rrname=host, type="AAAA", rclass=FLUSH, ttl=120, rdata=src6)]
    s4, s6, g4, g6 = sockets()
    asked = {}
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, _, _ = select.select([s4, s6], [], [], max(0.0, min(0.5, end - time.monotonic())))
        for s in r:
            data, _ = s.recvfrom(9000)
            fam = 4 if s is s4 else 6
            try:
                m = DNS(data)
            except Exception:
                continue
            if m.qr != 0 or not m.qdcount or m.qd is None:
                continue
            an, ad = [], []
            for k in range(m.qdcount):
                q = m.qd.getlayer(DNSQR, k + 1) if hasattr(m.qd, "getlayer") else m.qd[k]
                if q is None:
                    break
                name, qt = name_of(q), q.qtype
                low = name.lower()
                if low == TYPE.lower() and qt in (PTR, ANY):
                    an += [DNSRR(rrname=TYPE, type="PTR", ttl=120, rdata=full) for full, _ in inst.values()]
                elif low in inst and qt in (SRV, TXT, ANY):
                    key = (low, qt, fam)
                    asked[key] = asked.get(key, 0) + 1
                    print("asked", low, qt, fam, asked[key], flush=True)
                    if asked[key] <= lose:
                        continue
                    full, p = inst[low]
                    if qt in (SRV, ANY):
                        an.append(DNSRRSRV(rrname=full, rclass=FLUSH, ttl=120, priority=0, weight=0, port=p,
                                           target=host))
                    if qt in (TXT, ANY):
                        an.append(DNSRR(rrname=full, type="TXT", rclass=FLUSH, ttl=120, rdata=[b"info=lossy"]))
                    ad = addrs
                elif low == host.lower() and qt in (A, AAAA, ANY):
                    an += [a for a in addrs if qt == ANY or (qt == A) == (a.type == A)]
            if not an:
                continue
            out = DNS(id=0, qr=1, aa=1, qd=None, an=chain(an), ar=chain(ad) if ad else None)
            s.sendto(bytes(out), g4 if fam == 4 else g6)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv)
