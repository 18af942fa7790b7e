#!/usr/bin/env python3
"""Replay lmdisc's event stream into a model and check it against /v1/peers
(tests/lab/test_attack_views.lua).  Run on a lab host; bounded in time.

  event_replay.py SOCK STOPFILE MAXSECONDS OUT

Reads GET /v1/events (the snapshot, then join / update / leave) into a model
{name: peer} until the file STOPFILE exists (or MAXSECONDS pass); then, until
a GET /v1/peers is taken with no event before or after it for a second,
compares the model with that listing: the same names, and each peer the same
in both (host, port, TXT, addresses, flags; not the times).  Writes a JSON
report to OUT: {"errors": [...], "events": N, "model": [names], "peers":
[names]}; errors are the stream's own inconsistencies (an index that skips,
a join of a peer already there, an update or leave of one that is not) and
each difference between the model and the listing.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from api_clients import Stream  # noqa: E402

SAME = ("name", "type", "domain", "host", "port", "txt", "addresses", "trusted", "self", "local")


def norm(p):
    out = {k: p.get(k) for k in SAME}
    out["addresses"] = sorted(json.dumps(a, sort_keys=True) for a in (p.get("addresses") or []))
    return out


def get_peers(sock):
    s = Stream(sock, "/v1/peers")
    deadline = time.time() + 10
    while not s.eof and not s.ended and time.time() < deadline:
        s.read_some(1)
        if s.status is not None and not s.chunked and "content-length" in s.headers and \
                len(s.body) >= int(s.headers["content-length"]):
            break
    s.close()
    return json.loads(s.body)


def main(argv):
    sock, stop, maxs, out = argv[1], argv[2], float(argv[3]), argv[4]
    errors, model, events = [], {}, 0
    st = Stream(sock, "/v1/events")
    last = None
    deadline = time.time() + maxs

    def pump(timeout):
        nonlocal last, events
        got = 0
        st.read_some(timeout)
        for line in st.lines():
            doc = json.loads(line)
            if doc.get("type") == "snapshot":
                for p in doc["peers"]:
                    model[p["name"]] = p
                last = doc["index"]
                continue
            events += 1
            got += 1
            if last is not None and doc["index"] != last + 1:
                errors.append("index %s after %s" % (doc["index"], last))
            last = doc["index"]
            name = doc["peer"]["name"]
            if doc["type"] == "join":
                if name in model:
                    errors.append("join of %s, already there (index %d)" % (name, last))
                model[name] = doc["peer"]
            elif doc["type"] == "update":
                if name not in model:
                    errors.append("update of %s, not there (index %d)" % (name, last))
                model[name] = doc["peer"]
            elif doc["type"] == "leave":
                if name not in model:
                    errors.append("leave of %s, not there (index %d)" % (name, last))
                model.pop(name, None)
        return got

    while time.time() < deadline and not os.path.exists(stop) and not st.eof:
        pump(0.2)
    peers = None
    for _ in range(10):  # a listing with no event around it
        t0 = time.time()
        n = 0
        while time.time() - t0 < 1:
            n += pump(0.2)
        peers = get_peers(sock)
        t0 = time.time()
        while time.time() - t0 < 1:
            n += pump(0.2)
        if n == 0:
            break
    st.close()
    listed = {p["name"]: p for p in peers}
    for name in sorted(set(model) | set(listed)):
        if name not in listed:
            errors.append("%s: in the events' model, not in /v1/peers" % name)
        elif name not in model:
            errors.append("%s: in /v1/peers, not in the events' model" % name)
        elif norm(model[name]) != norm(listed[name]):
            errors.append("%s differs: events say %s, /v1/peers %s" % (
                name, json.dumps(norm(model[name]), sort_keys=True), json.dumps(norm(listed[name]), sort_keys=True)))
    with open(out, "w") as f:
        json.dump({"errors": errors, "events": events, "model": sorted(model), "peers": sorted(listed),
                   "listed": listed}, f)
    print("replay-done", events, len(errors), flush=True)


if __name__ == "__main__":
    main(sys.argv)
