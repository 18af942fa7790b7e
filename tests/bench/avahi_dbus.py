#!/usr/bin/python3
"""Talk to the local avahi-daemon over the system D-Bus (python3-dbus), for the
TTL experiments and the benchmark.  Run it ONLY on a lab host
(tests/lab/lab exec LAB hN /usr/bin/python3 avahi_dbus.py ...): it refuses to
run in the root network namespace.

  publish  --name NAME --port P --ttl T [--type _lmserv._tcp] [--txt K=V]...
           Publish one service with raw records (AddRecord) whose TTL is T
           seconds: PTR type -> instance, SRV instance -> port + our host name,
           TXT instance, and the _services._dns-sd._udp PTR.  --ttl 0 uses
           AddService instead (avahi's defaults: PTR/TXT 4500 s, SRV 120 s).
  bulk     --count K --prefix NAME [--port-base P] [--ttl T] [--per-group G]
           Publish K services (NAME-0001 ...) from this one process, G per
           entry group (avahi's entries-per-entry-group-max is 32).
  resolve  --name NAME [--type T]
           Keep one service resolver open per protocol (IPv4 and IPv6, as
           lmdisc does) and log every Found / Failure with a timestamp.

Every event is one line "EVENT UNIX_TIME ..." on stdout, flushed.  SIGTERM /
SIGINT: free what was created (avahi sends goodbyes) and exit 0.
"""
import argparse
import signal
import struct
import sys
import time

from labguard import refuse_root_netns

AVAHI = "org.freedesktop.Avahi"
IF_UNSPEC = -1
PROTO_UNSPEC, PROTO_INET, PROTO_INET6 = -1, 0, 1
PUBLISH_UNIQUE = 1
CLASS_IN = 1
TYPE_PTR, TYPE_TXT, TYPE_SRV = 12, 16, 33
GROUP_STATES = {0: "uncommitted", 1: "registering", 2: "established", 3: "collision", 4: "failure"}


def emit(*fields):
    sys.stdout.write(" ".join(str(f) for f in fields) + "\n")
    sys.stdout.flush()


def now():
    return "%.6f" % time.time()


def wire_name(name):
    """DNS wire encoding of a (possibly escaped-free) name: labels split on '.'
    except inside the instance label, which the caller passes separately."""
    out = b""
    for label in name:
        b = label.encode("utf-8")
        if not 0 < len(b) < 64:
            raise ValueError("bad label %r" % label)
        out += bytes([len(b)]) + b
    return out + b"\0"


def labels(s):
    return [x for x in s.split(".") if x]


def txt_rdata(items):
    out = b""
    for it in items or [""]:
        b = it.encode("utf-8")
        out += bytes([len(b)]) + b
    return out


def ay(b):
    import dbus
    return dbus.Array([dbus.Byte(x) for x in b], signature="y")


class Publisher:
    def __init__(self, bus, server):
        import dbus
        self.dbus = dbus
        self.bus = bus
        self.server = server
        self.groups = []
        self.host = str(server.GetHostNameFqdn())

    def new_group(self):
        path = self.server.EntryGroupNew()
        g = self.dbus.Interface(self.bus.get_object(AVAHI, path), AVAHI + ".EntryGroup")
        self.groups.append(g)
        return g

    def add_raw(self, g, name, stype, port, ttl, txt, domain="local"):
        d = self.dbus
        inst = [name] + labels(stype) + labels(domain)
        inst_full = ".".join(x.replace("\\", "\\\\").replace(".", "\\.") if i == 0 else x
                             for i, x in enumerate(inst))
        type_full = stype + "." + domain
        ptr = wire_name(inst)
        srv = struct.pack("!HHH", 0, 0, port) + wire_name(labels(self.host))
        args = (d.Int32(IF_UNSPEC), d.Int32(PROTO_UNSPEC))
        # Shared records: flags 0.  SRV and TXT are unique (probed, cache-flush
        # bit), as avahi_server_add_service makes them.
        g.AddRecord(*args, d.UInt32(0), type_full, d.UInt16(CLASS_IN), d.UInt16(TYPE_PTR),
                    d.UInt32(ttl), ay(ptr))
        g.AddRecord(*args, d.UInt32(PUBLISH_UNIQUE), inst_full, d.UInt16(CLASS_IN), d.UInt16(TYPE_SRV),
                    d.UInt32(ttl), ay(srv))
        g.AddRecord(*args, d.UInt32(PUBLISH_UNIQUE), inst_full, d.UInt16(CLASS_IN), d.UInt16(TYPE_TXT),
                    d.UInt32(ttl), ay(txt_rdata(txt)))
        g.AddRecord(*args, d.UInt32(0), "_services._dns-sd._udp." + domain, d.UInt16(CLASS_IN),
                    d.UInt16(TYPE_PTR), d.UInt32(ttl), ay(wire_name(labels(type_full))))

    def add_service(self, g, name, stype, port, txt):
        d = self.dbus
        g.AddService(d.Int32(IF_UNSPEC), d.Int32(PROTO_UNSPEC), d.UInt32(0), name, stype, "", "",
                     d.UInt16(port), [ay(t.encode()) for t in (txt or [])])

    def wait_established(self, timeout=30.0):
        end = time.time() + timeout
        while time.time() < end:
            states = [int(g.GetState()) for g in self.groups]
            if any(s in (3, 4) for s in states):
                return GROUP_STATES[[s for s in states if s in (3, 4)][0]]
            if all(s == 2 for s in states):
                return "established"
            time.sleep(0.02)
        return "timeout"

    def free(self):
        for g in self.groups:
            try:
                g.Free()
            except Exception:
                pass
        self.groups = []


def sleep_forever(stop):
    while not stop["flag"]:
        time.sleep(0.2)


def main():
    refuse_root_netns("avahi_dbus", "run")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--ttl", type=int, required=True)
    p.add_argument("--type", default="_lmserv._tcp")
    p.add_argument("--txt", action="append", default=[])
    b = sub.add_parser("bulk")
    b.add_argument("--count", type=int, required=True)
    b.add_argument("--prefix", required=True)
    b.add_argument("--port-base", type=int, default=9000)
    b.add_argument("--ttl", type=int, default=0)
    b.add_argument("--type", default="_lmserv._tcp")
    b.add_argument("--per-group", type=int, default=25)
    r = sub.add_parser("resolve")
    r.add_argument("--name", required=True)
    r.add_argument("--type", default="_lmserv._tcp")
    a = ap.parse_args()

    import dbus
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    if a.cmd == "resolve":
        from dbus.mainloop.glib import DBusGMainLoop
        from gi.repository import GLib
        DBusGMainLoop(set_as_default=True)
        loop = GLib.MainLoop()
    bus = dbus.SystemBus()
    server = dbus.Interface(bus.get_object(AVAHI, "/"), AVAHI + ".Server")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if a.cmd in ("publish", "bulk"):
        pub = Publisher(bus, server)
        emit("start", now(), "host=" + pub.host)
        if a.cmd == "publish":
            g = pub.new_group()
            if a.ttl > 0:
                pub.add_raw(g, a.name, a.type, a.port, a.ttl, a.txt)
            else:
                pub.add_service(g, a.name, a.type, a.port, a.txt)
            g.Commit()
        else:
            g = None
            for i in range(a.count):
                if i % a.per_group == 0:
                    if g is not None:
                        g.Commit()
                    g = pub.new_group()
                name = "%s-%04d" % (a.prefix, i + 1)
                if a.ttl > 0:
                    pub.add_raw(g, name, a.type, a.port_base + i, a.ttl, ["info=bulk"])
                else:
                    pub.add_service(g, name, a.type, a.port_base + i, ["info=bulk"])
            if g is not None:
                g.Commit()
        st = pub.wait_established(60.0)
        emit(st, now(), "groups=%d" % len(pub.groups))
        if st != "established":
            pub.free()
            return 1
        sleep_forever(stop)
        pub.free()
        emit("withdrawn", now())
        return 0

    # resolve: one resolver per protocol, kept open; log what avahi reports.
    state = {}

    # Match rules first, for every path: avahi may emit Found before
    # ServiceResolverNew returns (handlers only run inside loop.run()).
    def on_found(iface, proto, name, stype, domain, host, aproto, address, port, txt, flags, path=None):
        if path in state:
            emit("found", now(), "proto=%d" % proto, "host=%s" % host, "addr=%s" % address, "port=%d" % port)

    def on_failure(error, path=None):
        if path in state:
            emit("failure", now(), "proto=%d" % state[path], "error=%s" % str(error).replace(" ", "_"))

    bus.add_signal_receiver(on_found, "Found", AVAHI + ".ServiceResolver", AVAHI, path_keyword="path")
    bus.add_signal_receiver(on_failure, "Failure", AVAHI + ".ServiceResolver", AVAHI, path_keyword="path")
    for proto in (PROTO_INET, PROTO_INET6):
        path = server.ServiceResolverNew(dbus.Int32(IF_UNSPEC), dbus.Int32(proto), a.name, a.type, "local",
                                         dbus.Int32(proto), dbus.UInt32(0))
        state[str(path)] = proto
    emit("resolving", now(), a.name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *x: (loop.quit(), False)[1])
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
