"""A fake lmdisc agent for the tests: HTTP/1.1 on an AF_UNIX socket in a
temporary directory (socketserver.UnixStreamServer + BaseHTTPRequestHandler),
canned answers, every request recorded. Streamed replies (registrations and
event streams) are held open; the test can push lines into them, drop them as
an agent restart would, and wait until the client closes them."""

from __future__ import annotations

import json
import os
import queue
import select
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

DROP = object()  # pushed into a stream: the agent drops the connection (as if it restarted)


class Request(NamedTuple):
    method: str
    target: str          # as sent: path and query, still URL-encoded
    path: str            # decoded path, no query
    query: dict          # {key: value}
    headers: dict        # lower-case names
    body: Any            # parsed JSON, or None without a body
    raw: bytes


class Stream:
    """A streamed reply held open by the fake agent."""

    def __init__(self, kind: str, name: str | None, request: Request):
        self.kind = kind
        self.name = name
        self.request = request
        self.queue: queue.Queue = queue.Queue()
        self.closed = threading.Event()
        self.closed_by: str | None = None  # "client" (EOF from the client) or "server" (dropped)

    def send(self, obj: Any) -> None:
        self.queue.put(obj)

    def drop(self) -> None:
        self.queue.put(DROP)


def node(name: str, port: int = 8000, info: str | None = "gemma-2b-it Q4_0", v4: str | None = "10.77.0.1",
         v6: str | None = "fd77::1", **extra: Any) -> dict:
    addrs = []
    if v6:
        addrs.append({"address": v6, "family": 6, "interface": "eth0"})
    if v4:
        addrs.append({"address": v4, "family": 4, "interface": "eth0"})
    d = {"name": name, "type": "_lmserv._tcp", "domain": "local", "host": name.split(":")[0] + ".local",
         "port": port, "info": info, "addresses": addrs, "txt": {"info": info, "model": "gemma"} if info else {},
         "local": False, "self": False, "first_seen": 1795472686.65, "last_seen": 1795472690.5}
    d.update(extra)
    return d


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, fmt: str, *args: Any) -> None:  # AF_UNIX has no client address
        pass

    def address_string(self) -> str:
        return "unix"

    @property
    def fake(self) -> "FakeAgent":
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_PATCH = do_DELETE = do_POST = do_HEAD = do_GET

    # ---- replies ----------------------------------------------------------

    def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, msg: str) -> None:
        self._json(status, {"error": msg})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, obj: Any) -> None:
        data = (obj if isinstance(obj, str) else json.dumps(obj)).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _hold(self, stream: Stream) -> None:
        """Keep the stream open: send what is queued (the canned lines, then what the test
        pushes), until the client closes it or the test drops it."""
        sock = self.connection
        self.close_connection = True
        try:
            while not self.fake.stopping.is_set():
                try:
                    item = stream.queue.get_nowait()
                except queue.Empty:
                    item = None
                if item is DROP:
                    stream.closed_by = "server"
                    sock.shutdown(socket.SHUT_RDWR)
                    break
                if item is not None:
                    self._chunk(item)
                    continue
                readable, _, _ = select.select([sock], [], [], 0.02)
                if readable and not sock.recv(4096):
                    stream.closed_by = "client"
                    break
        except OSError:
            stream.closed_by = stream.closed_by or "client"
        finally:
            stream.closed_by = stream.closed_by or "server"
            stream.closed.set()
            with self.fake.cond:
                self.fake.cond.notify_all()

    # ---- routing ----------------------------------------------------------

    def _dispatch(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        url = urlsplit(self.path)
        req = Request(self.command, self.path, unquote(url.path), {k: v[0] for k, v in parse_qs(url.query).items()},
                      {k.lower(): v for k, v in self.headers.items()}, body, raw)
        fake = self.fake
        with fake.cond:
            fake.requests.append(req)
            fake.cond.notify_all()
        m, p = req.method, req.path
        fail = fake.fail.get((m, p))
        if fail:
            return self._error(*fail)
        if m == "GET" and p == "/v1/peers":
            return self._json(200, fake.peers, {"X-Lmdisc-Index": "7", "X-Lmdisc-Epoch": fake.epoch})
        if m == "GET" and p == "/v1/services":
            with fake.cond:
                incomplete = fake.services_incomplete > 0
                fake.services_incomplete -= 1 if incomplete else 0
            return self._json(200, {"type": "_lmserv._tcp", "complete": not incomplete, "nodes": fake.services})
        if m == "GET" and p == "/v1/self":
            return self._json(200, {"announcing": False, "state": "observing"})
        if m == "GET" and p == "/v1/events":
            return self._events(req)
        if m == "POST" and p == "/v1/self/drain":
            grace = body.get("grace", 30) if isinstance(body, dict) else 30
            return self._json(202, {"state": "draining", "grace": grace})
        if p.startswith("/v1/services/"):
            if not fake.registration_api:
                self.close_connection = True
                return self._error(405, "only GET is supported")
            name = p[len("/v1/services/"):]
            if m == "PUT":
                return self._register(req, name)
            if m == "PATCH":
                return self._patch(req, name)
            if m == "DELETE":
                return self._json(200, {"name": name, "state": "withdrawn"})
        return self._error(404, "unknown path")

    def _register(self, req: Request, name: str) -> None:
        fake = self.fake
        if name in fake.reject:
            return self._error(*fake.reject[name])
        if "ttl" in req.query:
            return self._json(201, {"name": name, "state": "registering", "ttl": int(req.query["ttl"])})
        stream = Stream("registration", name, req)
        with fake.cond:  # registered before the client can see the reply (and PATCH it)
            fake.txt[name] = dict((req.body or {}).get("txt") or {})
            fake.registrations.append(stream)
            fake.cond.notify_all()
        stream.send({"state": "registering", "name": name})
        if fake.drop_registrations:
            stream.drop()
        elif fake.auto_establish:
            stream.send({"state": "established", "name": name})
        self._start_stream()
        self._hold(stream)

    def _patch(self, req: Request, name: str) -> None:
        fake = self.fake
        with fake.cond:
            live = any(s.name == name and not s.closed.is_set() for s in fake.registrations)
            if live:
                txt = fake.txt.setdefault(name, {})
                for k, v in ((req.body or {}).get("txt") or {}).items():
                    if v is None:
                        txt.pop(k, None)
                    else:
                        txt[k] = v
                txt = dict(txt)
        if not live:
            return self._error(404, f'no service named "{name}" is registered')
        return self._json(200, {"name": name, "txt": txt})

    def _events(self, req: Request) -> None:
        fake = self.fake
        with fake.cond:
            step = fake.event_script.pop(0) if fake.event_script else None
        if step is None:
            step = {"lines": [{"type": "snapshot", "index": 0, "epoch": fake.epoch, "reset": False,
                               "peers": fake.peers}], "then": "hold"}
        if "status" in step:
            self.close_connection = True
            return self._error(step["status"], "too many event streams are open; try again later")
        stream = Stream("events", None, req)
        for line in step.get("lines", ()):
            stream.send(line)
        if step.get("then") == "drop":
            stream.drop()
        with fake.cond:
            fake.event_streams.append(stream)
            fake.cond.notify_all()
        self._start_stream()
        self._hold(stream)


class FakeAgent:
    """Start with ``FakeAgent(tmpdir).start()``; ``path`` is its socket."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "agent.sock")
        self.cond = threading.Condition()
        self.requests: list[Request] = []
        self.epoch = "e1"
        self.peers = [node("h1:8000"), node("h2:8000", info="llama-3 8B", v4="10.77.0.2", v6="fd77::2",
                                                 routable=True, sources=["mdns"])]
        self.services = [node("h1:8000"), node("h3:9000", port=9000, info=None, v4=None, v6="fd77::3")]
        self.services_incomplete = 0
        self.fail: dict = {}            # (method, path) -> (status, error)
        self.reject: dict = {}          # registration name -> (status, error)
        self.registration_api = True
        self.auto_establish = True
        self.drop_registrations = False  # take each registration and drop it at once
        self.txt: dict = {}             # registration name -> TXT as patched
        self.registrations: list[Stream] = []
        self.event_streams: list[Stream] = []
        self.event_script: list[dict] = []
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "FakeAgent":
        self._server = _Server(self.path, _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def wait_for(self, pred, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def find(self, method: str, path: str | None = None, prefix: str | None = None) -> list[Request]:
        with self.cond:
            return [r for r in self.requests if r.method == method
                    and (path is None or r.path == path) and (prefix is None or r.path.startswith(prefix))]
