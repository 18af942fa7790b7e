#!/usr/bin/env python3
"""Hostile and slow clients of lmdisc's local API, for tests/lab/test_api_bounds.lua.

Run on a lab host (never in the root namespace: it only talks to a Unix
socket, but the agent it talks to runs on a lab host).  Every mode is bounded
in time and count and stops by itself.

  api_clients.py slow-streams SOCK N GO OUT DEADLINE
      N event streams that read their snapshot and then stop reading until the
      file GO exists (it holds the index the agent has reached); then each
      reads what is left up to EOF, and each stream that was closed resumes
      with ?since=LAST&epoch=E and reads up to that index.  Writes a JSON
      report to OUT.
  slowloris SOCK N SECONDS OUT
      N connections, each sending one byte of a request header per second for
      at most SECONDS; records when the agent closed each one.
  flood SOCK N SECONDS OUT
      N non-blocking connection attempts (at most SECONDS), each closed at
      once; counts what connected and what failed.
  streams SOCK N SECONDS
      N event streams held open (reading) until SECONDS pass (or a signal);
      prints "STREAM i STATUS" for each as it is answered, then "HELD k",
      and "CLOSED" for each that the agent closes.  SOCK may be
      tcp:HOST:PORT (IPv4).
  half-open SOCK N SECONDS
      N connections that each send the start of a request and then nothing
      (connecting for at most a third of SECONDS, retrying while the listen
      backlog is full, until a second passes without a new one); prints "OPEN connected=C of=N", then holds them until
      SECONDS pass, printing "ALIVE k" (those the agent has not closed) twice
      a second.  SOCK may be tcp:HOST:PORT, or tcp:HOST:PORT@SRC,SRC,...
      to connect from those source addresses in turn.
"""
import json
import os
import resource
import select
import signal
import socket
import sys
import time


class Stream:
    """One HTTP/1.1 GET on the agent's socket, decoded (chunked or not) into lines."""

    def __init__(self, path, target="/v1/events", rcvbuf=None, timeout=10):
        tcp = path.startswith("tcp:")
        self.s = socket.socket(socket.AF_INET if tcp else socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        if tcp:
            host, port = path[4:].rsplit(":", 1)
            self.s.connect((host, int(port)))
        else:
            self.s.connect(path)
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: lmdisc\r\n\r\n" % target).encode())
        self.buf = b""
        self.body = b""
        self.status = None
        self.headers = {}
        self.chunked = False
        self.left = None      # bytes left in the current chunk; None: a size line is next
        self.eof = False
        self.error = None
        self.ended = False    # the last chunk came

    def _parse(self):
        if self.status is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            self.buf = self.buf[end + 4:]
            self.status = int(head[0].split()[1])
            for h in head[1:]:
                k, _, v = h.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        if not self.chunked:
            self.body += self.buf
            self.buf = b""
            return
        while self.buf and not self.ended:
            if self.left is None:            # a chunk-size line
                nl = self.buf.find(b"\r\n")
                if nl < 0:
                    return
                size = int(self.buf[:nl].split(b";")[0], 16)
                self.buf = self.buf[nl + 2:]
                if size == 0:
                    self.ended = True
                    return
                self.left = size
            elif self.left > 0:              # chunk data
                take = self.buf[:self.left]
                self.body += take
                self.buf = self.buf[len(take):]
                self.left -= len(take)
            else:                            # the CRLF after the data
                if len(self.buf) < 2:
                    return
                if self.buf[:2] != b"\r\n":
                    raise ValueError("bad chunk trailer %r" % self.buf[:10])
                self.buf = self.buf[2:]
                self.left = None

    def read_some(self, timeout):
        """Read what is there within timeout; False at EOF (or reset)."""
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(65536)
        except socket.timeout:
            return True
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            self.error = str(e)
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        self._parse()
        return True

    def lines(self):
        """Complete lines received so far (consumed)."""
        if b"\n" not in self.body:
            return []
        head, _, rest = self.body.rpartition(b"\n")
        self.body = rest
        return [l for l in head.split(b"\n") if l.strip()]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def slow_streams(path, n, go, out, deadline):
    t_end = time.monotonic() + deadline
    streams, report = [], {"clients": []}
    for i in range(n):
        st = Stream(path, rcvbuf=4096)
        first = []
        while not first and time.monotonic() < t_end:
            if not st.read_some(1):
                break
            first = st.lines()
        if not first:
            raise SystemExit("stream %d: no snapshot (status %s)" % (i, st.status))
        snap = json.loads(first[0])
        streams.append((st, snap, first[1:]))
    print("READY %d" % n, flush=True)
    # stop reading until the test says go (bounded)
    target = None
    while time.monotonic() < t_end:
        if os.path.exists(go):
            with open(go) as f:
                txt = f.read().strip()
            if txt:
                target = int(txt)
                break
        time.sleep(0.1)
    report["target"] = target
    for i, (st, snap, extra) in enumerate(streams):
        c = {"snapshot_index": snap["index"], "epoch": snap["epoch"], "status": st.status}
        lines = list(extra)
        stop = time.monotonic() + 10
        while not st.eof and time.monotonic() < stop:
            if not st.read_some(2):
                break
            lines += st.lines()
            if not st.eof and target is not None and lines and json.loads(lines[-1])["index"] >= target:
                break  # not dropped: it has everything
        idx = [json.loads(l)["index"] for l in lines]
        c["eof"] = st.eof
        c["received"] = len(idx)
        c["first"] = idx[0] if idx else None
        c["last"] = idx[-1] if idx else snap["index"]
        c["contiguous"] = idx == list(range(snap["index"] + 1, snap["index"] + 1 + len(idx)))
        st.close()
        if st.eof:
            # resume where it left off
            r = Stream(path, "/v1/events?since=%d&epoch=%s" % (c["last"], snap["epoch"]))
            got, stop = [], time.monotonic() + 10
            while time.monotonic() < stop:
                if not r.read_some(1):
                    break
                got += [json.loads(l) for l in r.lines()]
                if got and target is not None and got[-1].get("index", -1) >= target:
                    break
            r.close()
            c["resume_status"] = r.status
            c["resume_error"] = r.error
            c["resume_eof"] = r.eof
            c["resume_first_type"] = got[0]["type"] if got else None
            c["resume_first_reset"] = got[0].get("reset") if got else None
            ri = [g["index"] for g in got]
            c["resume_first"] = ri[0] if ri else None
            c["resume_last"] = ri[-1] if ri else None
            c["resume_contiguous"] = ri == list(range(c["last"] + 1, c["last"] + 1 + len(ri)))
        report["clients"].append(c)
    with open(out + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(out + ".tmp", out)


def slowloris(path, n, seconds, out):
    """n connections each dribbling a request header, one byte a second."""
    req = b"GET /v1/health HTTP/1.1\r\nHost: lmdisc\r\nX-Slow: " + b"a" * 4096
    t0 = time.monotonic()
    conns = []
    for i in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(True)  # a full listen backlog makes connect wait for the agent's accept
        s.connect(path)      # (bounded by the alarm that main() sets)
        s.setblocking(False)
        conns.append({"s": s, "sent": 0, "closed_at": None, "error": None})
    print("CONNECTED %d" % n, flush=True)
    tick = 0
    while time.monotonic() - t0 < seconds and any(c["closed_at"] is None for c in conns):
        for c in conns:
            if c["closed_at"] is not None:
                continue
            # did the agent close it?  (readable: EOF or a reply)
            r, _, _ = select.select([c["s"]], [], [], 0)
            if r:
                try:
                    data = c["s"].recv(4096)
                except OSError as e:
                    data, c["error"] = b"", str(e)
                c["closed_at"] = time.monotonic() - t0
                c["reply"] = data[:80].decode("latin-1")
                c["s"].close()
                continue
            try:
                c["s"].send(req[c["sent"]:c["sent"] + 1])
                c["sent"] += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                c["closed_at"], c["error"] = time.monotonic() - t0, str(e)
                c["s"].close()
        tick += 1
        # one byte a second: sleep until the next tick, but notice closes meanwhile
        until = t0 + tick
        while time.monotonic() < until:
            open_socks = [c["s"] for c in conns if c["closed_at"] is None]
            if not open_socks:
                break
            r, _, _ = select.select(open_socks, [], [], max(0, until - time.monotonic()))
            for c in conns:
                if c["closed_at"] is None and c["s"] in r:
                    try:
                        data = c["s"].recv(4096)
                    except OSError as e:
                        data, c["error"] = b"", str(e)
                    c["closed_at"] = time.monotonic() - t0
                    c["reply"] = data[:80].decode("latin-1")
                    c["s"].close()
    for c in conns:
        if c["closed_at"] is None:
            c["s"].close()
    rep = [{k: c[k] for k in ("sent", "closed_at", "error")} | {"reply": c.get("reply")} for c in conns]
    with open(out + ".tmp", "w") as f:
        json.dump({"n": n, "clients": rep}, f)
    os.rename(out + ".tmp", out)


def flood(path, n, seconds, out):
    """n non-blocking connection attempts, each closed at once."""
    t0 = time.monotonic()
    ok = failed = busy = 0
    errors = {}
    held = []
    for i in range(n):
        if time.monotonic() - t0 > seconds:
            break
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
            ok += 1
        except (BlockingIOError, InterruptedError):
            busy += 1  # AF_UNIX: the listen backlog is full
        except OSError as e:
            failed += 1
            errors[e.__class__.__name__] = errors.get(e.__class__.__name__, 0) + 1
        held.append(s)
        if len(held) >= 200:  # keep up to 200 open at once, then let them go
            for h in held:
                h.close()
            held = []
    for h in held:
        h.close()
    with open(out + ".tmp", "w") as f:
        json.dump({"attempts": ok + busy + failed, "connected": ok, "backlog_full": busy, "failed": failed,
                   "errors": errors,
                   "seconds": time.monotonic() - t0}, f)
    os.rename(out + ".tmp", out)


def streams(path, n, seconds):
    """n event streams, held (and read) until seconds pass."""
    t_end = time.monotonic() + seconds
    held = []
    for i in range(n):
        st = Stream(path)
        while st.status is None and time.monotonic() < t_end:
            if not st.read_some(1):
                break
        print("STREAM %d %s" % (i, st.status), flush=True)
        if st.status == 200:
            held.append(st)
        else:
            st.close()
    print("HELD %d" % len(held), flush=True)
    while time.monotonic() < t_end and held:
        r, _, _ = select.select([st.s for st in held], [], [], max(0, min(1, t_end - time.monotonic())))
        for st in list(held):
            if st.s in r:
                if not st.read_some(0.1):
                    print("CLOSED", flush=True)
                    held.remove(st)
                st.lines()
    for st in held:
        st.close()


def half_open(path, n, seconds):
    """n connections whose request never completes, held."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64) if hard != resource.RLIM_INFINITY else n + 64, hard))
    t0 = time.monotonic()
    part = b"GET /v1/health HTTP/1.1\r\nHost: lmdisc\r\n"  # no blank line: never a whole request
    alive = []
    progress = t0  # the last connect that succeeded: a second without one ends the connecting
    while len(alive) < n and time.monotonic() - t0 < seconds / 3 and time.monotonic() - progress < 1:
        if path.startswith("tcp:"):
            target, _, sources = path[4:].partition("@")
            host, port = target.rsplit(":", 1)
            srcs = sources.split(",") if sources else [None]
            src = srcs[len(alive) % len(srcs)]
            try:
                s = socket.create_connection((host, int(port)), timeout=0.2,
                                             source_address=(src, 0) if src else None)
            except OSError:  # the backlog is full: the SYN waits
                continue
            s.setblocking(False)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
            except (BlockingIOError, InterruptedError):  # AF_UNIX: the listen backlog is full
                s.close()
                time.sleep(0.001)
                continue
        try:
            s.send(part)
        except OSError:
            pass  # closed already: counted below
        alive.append(s)
        progress = time.monotonic()
    print("OPEN connected=%d of=%d" % (len(alive), n), flush=True)
    next_report = time.monotonic()
    while time.monotonic() - t0 < seconds:
        r, _, _ = select.select(alive, [], [], 0.1) if alive else ([], [], [])
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                alive.remove(s)
                s.close()
        if time.monotonic() >= next_report:
            print("ALIVE %d" % len(alive), flush=True)
            next_report += 0.5
        if not alive:
            time.sleep(0.1)
    for s in alive:
        s.close()


def main(argv):
    mode = argv[1]
    # whatever happens, this process ends: SECONDS (or DEADLINE) plus a margin
    limit = {"slow-streams": 6, "slowloris": 4, "flood": 4, "streams": 4, "half-open": 4}.get(mode)
    if limit:
        signal.alarm(int(float(argv[limit])) + 60)
    if mode == "slow-streams":
        slow_streams(argv[2], int(argv[3]), argv[4], argv[5], float(argv[6]))
    elif mode == "slowloris":
        slowloris(argv[2], int(argv[3]), float(argv[4]), argv[5])
    elif mode == "flood":
        flood(argv[2], int(argv[3]), float(argv[4]), argv[5])
    elif mode == "streams":
        streams(argv[2], int(argv[3]), float(argv[4]))
    elif mode == "half-open":
        half_open(argv[2], int(argv[3]), float(argv[4]))
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main(sys.argv)
