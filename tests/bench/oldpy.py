#!/usr/bin/python3
"""The old Python discovery module that lmdisc replaces, rebuilt on Debian's
python3-zeroconf (0.47.3) the way it worked, for side-by-side benchmarks.
Sends multicast: run it ONLY on a lab host (tests/lab/lab exec LAB hN ...);
it refuses to run in the root network namespace.

  discover_nodes(timeout)  a fresh Zeroconf + ServiceBrowser collecting for
                           `timeout` seconds (always waits all of it), each
                           service resolved with get_service_info; first
                           non-loopback IPv4 address only.
  Registry(ttl=60)         update(nodes) stamps last_seen; list_alive() keeps
                           the nodes seen within ttl seconds.
  registry thread          REGISTRY.update(discover_nodes(timeout=2)) every 30 s.

Commands:
  oldpy.py discover [--timeout 5] [--json]
  oldpy.py registry --out FILE [--interval 30] [--scan 2] [--ttl 60] [--poll 0.2]
      runs the registry thread and, as a consumer would, polls list_alive()
      every --poll seconds; writes "join NAME T" / "leave NAME expired T" to
      FILE when a name appears in / disappears from list_alive(), and
      "scan N T" after each scan.  SIGTERM/SIGINT: stop.
"""
import argparse
import json
import signal
import socket
import sys
import threading
import time

from labguard import refuse_root_netns

SERVICE_TYPE = "_lmserv._tcp.local."


refuse_root_netns("oldpy", "send multicast")
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf  # noqa: E402


class NodeInfo:
    def __init__(self, name, host, port, info, address):
        self.name, self.host, self.port, self.info, self.address = name, host, port, info, address

    def as_dict(self):
        return {"name": self.name, "host": self.host, "port": self.port, "info": self.info, "address": self.address}


class _Collector(ServiceListener):
    def __init__(self):
        self.nodes = {}
        self.lock = threading.Lock()

    def _resolve(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=1500)
        if not info:
            return
        addr = None
        for a in info.addresses:  # IPv4 only, first non-loopback
            if len(a) == 4 and a[0] != 127:
                addr = socket.inet_ntoa(a)
                break
        txt = {}
        for k, v in (info.properties or {}).items():
            txt[k.decode(errors="replace")] = v.decode(errors="replace") if isinstance(v, bytes) else v
        short = name[: -len(type_) - 1] if name.endswith("." + type_) else name
        with self.lock:
            self.nodes[short] = NodeInfo(short, info.server, info.port, txt.get("info"), addr)

    def add_service(self, zc, type_, name):
        self._resolve(zc, type_, name)

    def update_service(self, zc, type_, name):
        self._resolve(zc, type_, name)

    def remove_service(self, zc, type_, name):
        pass


def discover_nodes(timeout=5.0):
    zc = Zeroconf()
    try:
        coll = _Collector()
        browser = ServiceBrowser(zc, SERVICE_TYPE, coll)
        time.sleep(timeout)
        browser.cancel()
        with coll.lock:
            return list(coll.nodes.values())
    finally:
        zc.close()


class Registry:
    def __init__(self, ttl=60.0):
        self.ttl = ttl
        self.seen = {}
        self.lock = threading.Lock()

    def update(self, nodes):
        now = time.time()
        with self.lock:
            for n in nodes:
                self.seen[n.name] = (n, now)

    def list_alive(self):
        now = time.time()
        with self.lock:
            return [n for n, t in self.seen.values() if now - t < self.ttl]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("discover")
    d.add_argument("--timeout", type=float, default=5.0)
    d.add_argument("--json", action="store_true")
    r = sub.add_parser("registry")
    r.add_argument("--out", required=True)
    r.add_argument("--interval", type=float, default=30.0)
    r.add_argument("--scan", type=float, default=2.0)
    r.add_argument("--ttl", type=float, default=60.0)
    r.add_argument("--poll", type=float, default=0.2)
    a = ap.parse_args()

    if a.cmd == "discover":
        t0 = time.time()
        nodes = discover_nodes(a.timeout)
        el = time.time() - t0
        if a.json:
            print(json.dumps({"elapsed": round(el, 3), "nodes": [n.as_dict() for n in nodes]}))
        else:
            for n in nodes:
                print("%s\t%s:%d\t%s\t%s" % (n.name, n.host, n.port, n.address, n.info))
        return 0

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *x: stop.set())
    signal.signal(signal.SIGINT, lambda *x: stop.set())
    reg = Registry(a.ttl)
    out = open(a.out, "a", buffering=1)

    def scanner():
        while not stop.is_set():
            nodes = discover_nodes(timeout=a.scan)
            reg.update(nodes)
            out.write("scan %d %.6f\n" % (len(nodes), time.time()))
            stop.wait(a.interval)

    th = threading.Thread(target=scanner, daemon=True)
    th.start()
    alive = set()
    while not stop.is_set():
        now_alive = {n.name for n in reg.list_alive()}
        t = time.time()
        for n in sorted(now_alive - alive):
            out.write("join %s %.6f\n" % (n, t))
        for n in sorted(alive - now_alive):
            out.write("leave %s expired %.6f\n" % (n, t))
        alive = now_alive
        stop.wait(a.poll)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
