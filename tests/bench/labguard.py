"""Shared by the bench's Python helpers: refuse to run outside a lab host.

They speak mDNS (oldpy.py through python-zeroconf, avahi_dbus.py through a
host's avahi-daemon), which must never happen in the root network namespace.
"""
import os
import sys


def refuse_root_netns(prog, what):
    """Exit unless this process is in a network namespace other than PID 1's."""
    try:
        me = os.readlink("/proc/self/ns/net")
        root = None
        for pid in (1, 2):
            try:
                root = os.readlink("/proc/%d/ns/net" % pid)
                break
            except OSError:
                continue
    except OSError as e:
        sys.exit("%s: cannot check the network namespace: %s" % (prog, e))
    if root is None or me == root:
        sys.exit("%s: refusing to %s in the root network namespace (use tests/lab/lab exec)" % (prog, what))
