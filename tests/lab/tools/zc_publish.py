#!/usr/bin/python3
"""Announce one service with python-zeroconf the way the old lmserv module
did: a Zeroconf on every interface and both IP versions (IPVersion.All), a
ServiceInfo with one IPv4 address only, on a host name of its own
(HOST-zc.local: avahi-daemon on the host has HOST.local, with an AAAA).
Sends multicast: run it ONLY on a lab host (tests/lab/lab exec / Lab:bg);
it refuses the root namespace.

  zc_publish.py NAME PORT IPV4 [INFO]

Prints "registered NAME" once python-zeroconf has announced it, then waits
for SIGTERM/SIGINT and unregisters (goodbye)."""
import os
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from labguard import refuse_root_netns  # noqa: E402

refuse_root_netns("zc_publish", "send multicast")
from zeroconf import IPVersion, ServiceInfo, Zeroconf  # noqa: E402

TYPE = "_lmserv._tcp.local."


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: zc_publish.py NAME PORT IPV4 [INFO]")
    name, port, ipv4 = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    info = sys.argv[4] if len(sys.argv) == 5 else ""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    zc = Zeroconf(ip_version=IPVersion.All)
    si = ServiceInfo(TYPE, "%s.%s" % (name, TYPE), addresses=[socket.inet_aton(ipv4)], port=port,
                     properties={"info": info}, server="%s-zc.local." % socket.gethostname())
    zc.register_service(si)
    print("registered %s" % name, flush=True)
    stop.wait(600)  # bounded: a lab test stops it long before
    zc.unregister_service(si)
    zc.close()


if __name__ == "__main__":
    main()
