#!/usr/bin/python3
"""Load generator for wide-area DNS-SD (issue 20): the RFC 2136 updates that
N lmdisc agents would send to a domain's primary, TSIG-signed
(python3-dnspython), without running N agents.

  wide_load.py --server IP --zone ZONE --key KEYFILE --state FILE fill N [--shards S] [--lease L]
  wide_load.py --server IP --zone ZONE --key KEYFILE --state FILE run SECONDS
               [--refresh | --no-refresh] [--churn PCT] [--lease L]

fill: lists shards s0..s(S-1) in b._dns-sd._udp.ZONE (RFC 6763 section 11;
      S 0: none, the domain as it was) and writes N services as agents write
      them (INSTANCE lgNNNNN on host lghNNNNN, in the shard its host name
      hashes to, as src/dns/shard.c picks it): PTR, SRV, TXT, A in the browse
      zone, "lmd-live=SEQ/LEASE" at INSTANCE.HOST._live.ZONE in the liveness
      zone.  In batches of BATCH services per update message over TCP: the
      bulk fill is one operator action, so it goes with the key given (the
      lab's admin key), not N host keys.
run:  for SECONDS, what the agents do:
      - refreshes (--refresh, the default): each live service every LEASE/2
        seconds, as publish.c does: its liveness record (one update of the
        liveness zone), then the same browse records again (one update that
        deletes and re-adds them: the zone's serial stays);
      - churn (--churn PCT, per minute, of N): events in turn: a clean leave
        (the browse records and the liveness record deleted), a join (a new
        instance), a TXT change (a new "load=" value), a crash (the service
        stops refreshing: a sweeper removes it after its lease), a join, a
        TXT change.
      One update per message over UDP (TCP when the server truncates), as
      agents send them, signed with the key given.
Prints one JSON object (what was sent, what came back, how long) on stdout;
the state (which services live, which crashed) is kept in --state between
runs.  Bounded: every exchange has a 5 s timeout, a run its SECONDS.
"""
import argparse
import json
import random
import re
import sys
import time

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update

BATCH = 200
TTL = 60
TYPE = "_lmserv._tcp"
MASK = (1 << 64) - 1


def die(msg):
    sys.stderr.write("wide_load: " + msg + "\n")
    sys.exit(2)


def read_key(path):
    text = open(path).read()
    m = re.search(r'key\s+"([^"]+)"\s*\{.*?algorithm\s+([\w-]+)\s*;.*?secret\s+"([^"]+)"', text, re.S)
    if not m:
        die(f"{path}: not a BIND key file (key \"NAME\" {{ algorithm ...; secret \"...\"; }};)")
    return m.group(1), m.group(2), m.group(3)


def score(host, shard):
    """lmd_dns_shard_pick's score: fmix64(FNV-1a-64("host/shard"))"""
    h = 14695981039346656037
    for c in (host.lower() + "/" + shard.lower()).encode():
        h = ((h ^ c) * 1099511628211) & MASK
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & MASK
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & MASK
    return h ^ (h >> 33)


def pick(host, shards):
    best = None
    for s in shards:
        v = score(host, s)
        if best is None or v > best[0]:
            best = (v, s)
    return best[1] if best else None


class Load:
    def __init__(self, a):
        self.a = a
        name, alg, secret = read_key(a.key)
        self.keyring = dns.tsigkeyring.from_text({name: (alg, secret)})
        self.keyname = name
        self.zone = a.zone.rstrip(".")
        self.live_zone = "_live." + self.zone
        self.stats = {"updates": 0, "bytes_out": 0, "bytes_in": 0, "tcp": 0, "failed": 0, "rcodes": {},
                      "refreshes": 0, "joins": 0, "leaves": 0, "crashes": 0, "txt_changes": 0}
        self.seq = random.randrange(1 << 31)

    # ---- names and records --------------------------------------------------
    def host(self, k):
        return f"lgh{k:05d}"

    def inst(self, k):
        return f"lg{k:05d}"

    def type_zone(self, k, st):
        s = pick(self.host(k), st["shards"]) if st["shards"] else None
        return f"{TYPE}.{s}.{self.zone}." if s else f"{TYPE}.{self.zone}."

    def txt(self, k, st):
        load = st["load"].get(str(k), 0)
        return f'"info=bench model {k}" "model=m{k}" "load={load}"'

    def addr(self, k):
        return f"10.77.{9 + k // 250 % 100}.{k % 250 + 1}"

    def browse(self, up, k, st, add=True, fresh=False):
        """what publish.c sends: the old records deleted, the same ones added
        (fresh: a bulk fill of an empty domain, the adds alone, so that
        BATCH services fit one message)"""
        tz = self.type_zone(k, st)
        inst = f"{self.inst(k)}.{tz}"
        host = f"{self.host(k)}.{self.zone}."
        if not fresh:
            up.delete(tz, "PTR", inst)
            for t in ("SRV", "TXT"):
                up.delete(inst, t)
            for t in ("A", "AAAA"):
                up.delete(host, t)
        if add:
            up.add(tz, TTL, "PTR", inst)
            up.add(inst, TTL, "SRV", f"0 0 8000 {host}")
            up.add(inst, TTL, "TXT", self.txt(k, st))
            up.add(host, TTL, "A", self.addr(k))

    def live(self, up, k, alive=True):
        owner = f"{self.inst(k)}.{self.host(k)}.{self.live_zone}."
        up.delete(owner, "TXT")
        if alive:
            self.seq = (self.seq + 1) & 0xffffffff
            up.add(owner, TTL, "TXT", f'"lmd-live={self.seq:08x}/{self.a.lease}"')

    # ---- sending ---------------------------------------------------------
    def send(self, up, tcp=False):
        wire = up.to_wire()
        self.stats["updates"] += 1
        self.stats["bytes_out"] += len(wire)
        try:
            if tcp or len(wire) > 512:
                self.stats["tcp"] += 1
                r = dns.query.tcp(up, self.a.server, timeout=5)
            else:
                r = dns.query.udp(up, self.a.server, timeout=5, ignore_trailing=True)
                if r.flags & dns.flags.TC:
                    self.stats["tcp"] += 1
                    r = dns.query.tcp(up, self.a.server, timeout=5)
        except Exception as e:  # a timeout, a bad signature: counted, the run goes on
            self.stats["failed"] += 1
            self.stats["rcodes"][type(e).__name__] = self.stats["rcodes"].get(type(e).__name__, 0) + 1
            return False
        self.stats["bytes_in"] += len(r.to_wire())
        rc = dns.rcode.to_text(r.rcode())
        self.stats["rcodes"][rc] = self.stats["rcodes"].get(rc, 0) + 1
        if r.rcode() != 0:
            self.stats["failed"] += 1
        return r.rcode() == 0

    def update(self, zone):
        return dns.update.UpdateMessage(zone, keyring=self.keyring, keyname=self.keyname)

    # ---- fill ------------------------------------------------------------
    def fill(self, n, shards):
        st = {"n": n, "shards": [f"s{i}" for i in range(shards)], "live": list(range(1, n + 1)),
              "crashed": [], "gone": [], "next": n + 1, "load": {}}
        t0 = time.monotonic()
        up = self.update(self.zone)
        up.delete(f"b._dns-sd._udp.{self.zone}.", "PTR")
        up.add(f"b._dns-sd._udp.{self.zone}.", TTL, "PTR", f"{self.zone}.")
        for s in st["shards"]:
            up.add(f"b._dns-sd._udp.{self.zone}.", TTL, "PTR", f"{s}.{self.zone}.")
        self.send(up, tcp=True)
        ks = st["live"]
        for i in range(0, len(ks), BATCH):
            up = self.update(self.zone)
            for k in ks[i:i + BATCH]:
                self.browse(up, k, st, fresh=True)
            self.send(up, tcp=True)
            up = self.update(self.live_zone)
            for k in ks[i:i + BATCH]:
                self.live(up, k)
            self.send(up, tcp=True)
        self.stats["seconds"] = time.monotonic() - t0
        self.stats["services"] = n
        self.stats["shards"] = shards
        return st

    # ---- run -------------------------------------------------------------
    def run(self, st, seconds, refresh, churn):
        t0 = time.monotonic()
        period = self.a.lease / 2.0
        rate = len(st["live"]) / period if refresh else 0.0
        crate = st["n"] * churn / 100.0 / 60.0
        owed = cowed = 0.0
        pos = 0
        cycle = ("leave", "join", "txt", "crash", "join", "txt")
        turn = st.get("turn", 0)
        last = t0
        while True:
            now = time.monotonic()
            if now - t0 >= seconds:
                break
            owed += rate * (now - last)
            cowed += crate * (now - last)
            last = now
            while owed >= 1 and st["live"]:
                owed -= 1
                pos = (pos + 1) % len(st["live"])
                k = st["live"][pos]
                up = self.update(self.live_zone)
                self.live(up, k)
                self.send(up)
                up = self.update(self.zone)
                self.browse(up, k, st)
                self.send(up)
                self.stats["refreshes"] += 1
            while cowed >= 1:
                cowed -= 1
                ev = cycle[turn % len(cycle)]
                turn += 1
                if ev == "join":
                    k = st["next"]
                    st["next"] += 1
                    up = self.update(self.zone)
                    self.browse(up, k, st)
                    self.send(up)
                    up = self.update(self.live_zone)
                    self.live(up, k)
                    self.send(up)
                    st["live"].append(k)
                    self.stats["joins"] += 1
                elif ev == "txt" and st["live"]:
                    k = random.choice(st["live"])
                    st["load"][str(k)] = st["load"].get(str(k), 0) + 1
                    up = self.update(self.zone)
                    self.browse(up, k, st)
                    self.send(up)
                    self.stats["txt_changes"] += 1
                elif ev in ("leave", "crash") and st["live"]:
                    k = st["live"].pop(random.randrange(len(st["live"])))
                    if ev == "leave":
                        up = self.update(self.zone)
                        self.browse(up, k, st, add=False)
                        self.send(up)
                        up = self.update(self.live_zone)
                        self.live(up, k, alive=False)
                        self.send(up)
                        st["gone"].append(k)
                        self.stats["leaves"] += 1
                    else:
                        st["crashed"].append(k)
                        self.stats["crashes"] += 1
            time.sleep(0.02)
        st["turn"] = turn
        self.stats["seconds"] = time.monotonic() - t0
        self.stats["live"] = len(st["live"])
        return st


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", required=True)
    p.add_argument("--zone", required=True)
    p.add_argument("--key", required=True, help="BIND key file (the lab's admin key)")
    p.add_argument("--state", required=True, help="JSON file: the services between runs")
    p.add_argument("--lease", type=int, default=900)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fill")
    f.add_argument("n", type=int)
    f.add_argument("--shards", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("seconds", type=float)
    r.add_argument("--no-refresh", dest="refresh", action="store_false")
    r.add_argument("--churn", type=float, default=0.0, help="%% of N per minute")
    a = p.parse_args()
    if a.cmd == "run" and not 0 < a.seconds <= 3600:
        die("run SECONDS: 0 to 3600")
    if a.cmd == "fill" and not (0 < a.n <= 50000 and 0 <= a.shards <= 256):
        die("fill N (1..50000) --shards S (0..256)")
    load = Load(a)
    if a.cmd == "fill":
        st = load.fill(a.n, a.shards)
    else:
        try:
            st = json.load(open(a.state))
        except OSError as e:
            die(f"{a.state}: {e.strerror}: run `fill` first")
        st = load.run(st, a.seconds, a.refresh, a.churn)
    with open(a.state, "w") as fh:
        json.dump(st, fh)
    print(json.dumps(load.stats))


if __name__ == "__main__":
    main()
