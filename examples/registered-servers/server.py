#!/usr/bin/env python3
"""A language-model server's discovery, as the original module's README
showed it, with only the import line changed; it registers through the
host's lmdisc agent (or, without one, keeps an `lmdisc announce` child).

    python3 server.py PORT INFO

It announces a TXT `load` that it updates every few seconds, and on SIGTERM
drains (peers stop sending new work) before it exits.
"""
import os
import signal
import sys
import threading

from lmdisc import REGISTRY, announce_self, drain

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
INFO = sys.argv[2] if len(sys.argv) > 2 else "gemma-2b-it Q4_0"

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())

# 1. (start the HTTP server on PORT here)
# 2. Broadcast yourself once the port is bound
ann = announce_self(PORT, info=INFO)

# 3. Anywhere in your app: ask who else is alive
while not stop.wait(5):
    ann.set_txt(load=f"{os.getloadavg()[0]:.2f}")
    for node in REGISTRY.list_alive():
        print(f"Found peer @ http://{node.host}:{node.port}  ({node.info})", flush=True)

drain(grace=5)  # status=draining: routers stop sending work, then the agent withdraws us
