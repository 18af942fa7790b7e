#!/usr/bin/python3
"""Count mDNS packets and bytes in a pcap (written by tcpdump -w on the lab
bridge), optionally within a time window.  Reads a file only; sends nothing.

  pcapstat.py FILE [--from T0] [--to T1] [--by src|kind|fam] [--last-from IP]

Prints "packets BYTES queries responses v4 v6 seconds" for the window (bytes
are Ethernet frame bytes, as on the wire without preamble/FCS), or one such
line per group with --by.  --last-from IP prints the time of the last packet
sent by IP in the window (to see when a crashed host last spoke).
"""
import argparse
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            return
        magic = struct.unpack("<I", hdr[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            end = "<"
        else:
            end = ">"
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                return
            sec, frac, incl, orig = struct.unpack(end + "IIII", rh)
            data = f.read(incl)
            if len(data) < incl:
                return
            yield sec + frac / (1e9 if nano else 1e6), orig, data


def parse(data):
    """-> (family, src, is_response) or None."""
    if len(data) < 14:
        return None
    et = struct.unpack("!H", data[12:14])[0]
    off = 14
    if et == 0x0800:
        ihl = (data[off] & 0x0F) * 4
        src = ".".join(str(b) for b in data[off + 12:off + 16])
        udp = off + ihl
        fam = 4
    elif et == 0x86DD:
        src = ":".join("%x" % struct.unpack("!H", data[off + 8 + i:off + 10 + i])[0] for i in range(0, 16, 2))
        udp = off + 40
        fam = 6
    else:
        return None
    dns = udp + 8
    if len(data) < dns + 4:
        return None
    flags = struct.unpack("!H", data[dns + 2:dns + 4])[0]
    return fam, src, bool(flags & 0x8000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--from", dest="t0", type=float, default=None)
    ap.add_argument("--to", dest="t1", type=float, default=None)
    ap.add_argument("--by", choices=["src", "kind", "fam"], default=None)
    ap.add_argument("--last-from", default=None)
    a = ap.parse_args()
    groups = {}
    last = None
    first_t = last_t = None
    for t, size, data in packets(a.file):
        if a.t0 is not None and t < a.t0:
            continue
        if a.t1 is not None and t > a.t1:
            break
        p = parse(data)
        if not p:
            continue
        fam, src, resp = p
        if a.last_from and src == a.last_from:
            last = t
        first_t = t if first_t is None else first_t
        last_t = t
        key = {"src": src, "kind": "response" if resp else "query", "fam": "v%d" % fam, None: "all"}[a.by]
        g = groups.setdefault(key, [0, 0, 0, 0, 0, 0])
        g[0] += 1
        g[1] += size
        g[2 if not resp else 3] += 1
        g[4 if fam == 4 else 5] += 1
    if a.last_from:
        print("%.6f" % last if last is not None else "")
        return 0
    span = (a.t1 - a.t0) if (a.t0 is not None and a.t1 is not None) else ((last_t - first_t) if first_t else 0)
    if not groups:
        groups["all"] = [0] * 6
    for k in sorted(groups):
        g = groups[k]
        prefix = "" if a.by is None else k + " "
        print(prefix + "%d %d %d %d %d %d %.3f" % (g[0], g[1], g[2], g[3], g[4], g[5], span))
    return 0


if __name__ == "__main__":
    sys.exit(main())
