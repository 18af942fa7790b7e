"""A fake ``lmdisc`` executable for the fallback tests: a small Python script
written into a temporary directory. ``discover`` prints canned ``--json``
output; ``announce`` prints ``announced "NAME"`` and sleeps until a signal.
Every run records its argv and pid, and a terminating signal, in
``REC/calls.jsonl``."""

from __future__ import annotations

import json
import os
import stat
import sys
import time

SCRIPT = r'''#!{python}
import json, os, signal, sys
REC = {rec!r}

def record(**kw):
    kw["pid"] = os.getpid()
    with open(os.path.join(REC, "calls.jsonl"), "a") as f:
        f.write(json.dumps(kw) + "\n")

def stop(sig, frame):
    record(event="terminated", signal=sig)
    os._exit(0)

args = sys.argv[1:]
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
record(event="start", argv=args, loglevel=os.environ.get("LOGLEVEL"))
if args[:1] == ["discover"]:
    fail = os.path.join(REC, "discover.fail")
    if os.path.exists(fail):
        sys.stderr.write(open(fail).read())
        sys.exit(1)
    sys.stdout.write(open(os.path.join(REC, "discover.json")).read())
    sys.exit(0)
if args[:1] == ["announce"]:
    refuse = os.path.join(REC, "announce.refuse")
    if os.path.exists(refuse):
        sys.stderr.write(open(refuse).read())
        sys.exit(2)
    name = args[args.index("--name") + 1] if "--name" in args else "fakehost:" + args[1]
    sys.stderr.write("2026-01-01T00:00:00.000Z lmdisc info: announcing on every interface\n")
    sys.stderr.flush()
    print('announced "%s"' % name, flush=True)
    while True:
        signal.pause()
sys.stderr.write("lmdisc: unknown command\n")
sys.exit(2)
'''


class FakeBin:
    def __init__(self, directory: str):
        self.bindir = os.path.join(directory, "bin")
        self.rec = os.path.join(directory, "rec")
        os.makedirs(self.bindir)
        os.makedirs(self.rec)
        self.path = os.path.join(self.bindir, "lmdisc")
        with open(self.path, "w") as f:
            f.write(SCRIPT.format(python=sys.executable, rec=self.rec))
        os.chmod(self.path, os.stat(self.path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.set_discover({"type": "_lmserv._tcp", "source": "network", "complete": True, "elapsed": 1.01,
                           "nodes": []})

    def _write(self, name: str, text: str) -> None:
        tmp = os.path.join(self.rec, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(self.rec, name))

    def set_discover(self, doc: dict) -> None:
        self._write("discover.json", json.dumps(doc, indent=2))

    def fail_discover(self, message: str) -> None:
        self._write("discover.fail", message)

    def refuse_announce(self, message: str) -> None:
        self._write("announce.refuse", message)

    def calls(self) -> list[dict]:
        try:
            with open(os.path.join(self.rec, "calls.jsonl")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def starts(self, command: str) -> list[dict]:
        return [c for c in self.calls() if c["event"] == "start" and c["argv"][:1] == [command]]

    def terminated(self, pid: int) -> bool:
        return any(c["event"] == "terminated" and c["pid"] == pid for c in self.calls())

    def wait_for(self, pred, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if pred():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)  # polls a file the child writes: there is nothing to wait on
