"""The ``lmdisc`` binary, for hosts without an agent: finding it, running
``lmdisc discover --json``, and starting ``lmdisc announce`` children that die
with this process."""

from __future__ import annotations

import ctypes
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from typing import Any

from ._agent import NoAgent, socket_path
from ._log import log
from .errors import LmdiscError, LmdiscUnavailable

_PR_SET_PDEATHSIG = 1


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    for lib in (None, "libc.so.6"):
        try:
            fn = ctypes.CDLL(lib, use_errno=True).prctl
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        return fn
    return None


_prctl = _load_prctl()


def find_binary() -> str | None:
    """``$LMDISC_BIN`` if it names an executable file, else ``lmdisc`` on ``PATH``, else ``None``."""
    env = os.environ.get("LMDISC_BIN")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        log.warning("LMDISC_BIN=%s is not an executable file; looking for lmdisc on PATH", env)
    return shutil.which("lmdisc")


def unavailable(no_agent: NoAgent | None = None) -> LmdiscUnavailable:
    """The error for a host with neither an agent nor the binary: what to install or start."""
    path = no_agent.path if no_agent is not None else socket_path()
    agent = (f"the lmdisc agent at {path} refuses this user (add the user to the socket's group)"
             if no_agent is not None and no_agent.denied else f"no lmdisc agent at {path}")
    bad_bin = os.environ.get("LMDISC_BIN")
    binary = "no lmdisc binary on PATH" + (f" (LMDISC_BIN={bad_bin} is not an executable file)" if bad_bin else "")
    return LmdiscUnavailable(
        f"{agent} and {binary}: install the lmdisc package (apt install ./lmdisc_*.deb) "
        "and start it (systemctl start lmdisc), or set LMDISC_SOCKET")


def child_env() -> dict:
    """Our environment for an lmdisc child, with a LOGLEVEL it accepts (it refuses to
    start on a value it does not know, such as Python's CRITICAL or a number)."""
    env = dict(os.environ)
    level = env.get("LOGLEVEL", "").strip().lower()
    if level in ("critical", "fatal"):
        env["LOGLEVEL"] = "ERROR"
    elif level and level not in ("debug", "info", "warning", "warn", "error", "off"):
        del env["LOGLEVEL"]
    return env


def fmt_seconds(v: float) -> str:
    return str(int(v)) if float(v) == int(v) else repr(float(v))


def relay(line: str, prefix: str) -> None:
    """Log one line of a child's stderr at the level it was written with."""
    m = re.match(r"^\S+ lmdisc (debug|info|warning|error): (.*)$", line)
    if m:
        level = {"debug": 10, "info": 20, "warning": 30, "error": 40}[m.group(1)]
        log.log(level, "%s: %s", prefix, m.group(2))
    elif line.strip():
        log.warning("%s: %s", prefix, line)


def run_discover(binary: str, timeout: float) -> dict:
    """``lmdisc discover --json --timeout T``; its JSON document, or LmdiscError."""
    argv = [binary, "discover", "--json", "--timeout", fmt_seconds(timeout)]
    log.debug("running %s", " ".join(argv))
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=float(timeout) + 10,
                            env=child_env())
    except subprocess.TimeoutExpired:
        raise LmdiscError(f"`lmdisc discover --timeout {fmt_seconds(timeout)}` did not finish in time") from None
    except OSError as e:
        raise LmdiscError(f"cannot run {binary}: {e}") from None
    err = cp.stderr.decode("utf-8", "replace")
    if cp.returncode != 0:
        msg = err.strip().splitlines()[-1] if err.strip() else f"exit status {cp.returncode}"
        raise LmdiscError(f"`lmdisc discover` failed: {msg}")
    for line in err.splitlines():
        relay(line, "lmdisc discover")
    try:
        doc = json.loads(cp.stdout)
    except ValueError:
        raise LmdiscError(f"`lmdisc discover --json` printed something that is not JSON: {cp.stdout[:100]!r}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes", []), list):
        raise LmdiscError("`lmdisc discover --json` printed an unexpected document (no \"nodes\" list)")
    return doc


# ---- children bound to our lifetime ---------------------------------------

def _child_setup(parent_pid: int, prctl=_prctl, sig: int = int(signal.SIGTERM)):
    """preexec_fn: SIGTERM when the parent dies (PR_SET_PDEATHSIG), and at once
    if it died before prctl took effect.  The signal mask is reset first: a
    server that blocks SIGTERM (to sigwait for it) must not hand that on, or
    the death signal would stay pending and the child announce forever."""

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), sig)

    return setup


class _Spawner:
    """Starts children from one long-lived thread.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not
    the process: forking from a caller's short-lived thread would kill the
    announcement when that thread ends. This thread lives as long as the
    process (a new one is started after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, args=(self._queue,),
                                                name="lmdisc-spawner", daemon=True)
                self._thread.start()
            q = self._queue
        done = threading.Event()
        box: dict[str, Any] = {}
        q.put((argv, kw, done, box))
        if not done.wait(30):
            raise LmdiscError(f"starting {argv[0]} took over 30 s")
        if "error" in box:
            raise box["error"]
        return box["proc"]

    @staticmethod
    def _run(q: queue.SimpleQueue) -> None:
        while True:
            argv, kw, done, box = q.get()
            try:
                box["proc"] = subprocess.Popen(argv, preexec_fn=_child_setup(os.getpid()), **kw)
            except BaseException as e:  # handed to the caller
                box["error"] = e
            finally:
                done.set()


_spawner = _Spawner()


def _after_fork_in_child() -> None:
    global _spawner
    _spawner = _Spawner()  # its lock may have been held by another thread at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def spawn_bound(argv: list[str]) -> subprocess.Popen:
    """Start ``argv`` as a child that gets SIGTERM when this process dies (even
    by SIGKILL) on Linux; stdout and stderr merged into one pipe. The child is
    in a session of its own, so a Ctrl-C meant for the application does not
    withdraw the announcement behind its back."""
    try:
        return _spawner.popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True, env=child_env())
    except OSError as e:
        raise LmdiscError(f"cannot run {argv[0]}: {e}") from None


def terminate(proc: subprocess.Popen, timeout: float = 3.0) -> int | None:
    """SIGTERM (the binary withdraws and exits 0), then SIGKILL if it lingers; its exit status."""
    if proc.poll() is None:
        try:
            proc.terminate()
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("lmdisc (pid %d) did not exit on SIGTERM within %g s; killing it", proc.pid, timeout)
            proc.kill()
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
                return None
        except OSError:  # pragma: no cover - already reaped
            pass
    return proc.returncode
