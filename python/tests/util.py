"""Shared helpers: temporary directories, environment, child processes with bounded waits."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

import lmdisc
import lmdisc.events
import lmdisc.mdns
import lmdisc.registry

PYDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_until(pred, timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class Case(unittest.TestCase):
    """A temp dir, an environment of its own (no agent, no binary unless a test adds them),
    fast retries, and cleanup of announcements, the registry thread and child processes."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="lmdisc-py-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.empty_bin = os.path.join(self.tmp, "empty-bin")
        os.makedirs(self.empty_bin)
        env = mock.patch.dict(os.environ, {"LMDISC_SOCKET": os.path.join(self.tmp, "no-agent.sock"),
                                           "PATH": self.empty_bin})
        env.start()
        self.addCleanup(env.stop)
        os.environ.pop("LMDISC_BIN", None)
        for mod, attr, val in ((lmdisc.mdns, "_RETRY_INITIAL_S", 0.05), (lmdisc.mdns, "_RETRY_MAX_S", 0.2),
                               (lmdisc.events, "_RETRY_INITIAL_S", 0.05), (lmdisc.events, "_RETRY_MAX_S", 0.2)):
            p = mock.patch.object(mod, attr, val)
            p.start()
            self.addCleanup(p.stop)
        self.addCleanup(lmdisc.registry.REGISTRY.close)
        self.addCleanup(lmdisc.mdns._withdraw_all)

    def child_env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = PYDIR
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(extra)
        return env

    def spawn_python(self, code: str, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env or self.child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(self.reap, proc)
        return proc

    @staticmethod
    def reap(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()

    def kill_later(self, pid: int) -> None:
        def kill() -> None:
            if not pid_gone(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.addCleanup(kill)

    def read_line(self, proc: subprocess.Popen, timeout: float = 10.0) -> str:
        """One line of the child's stdout, within ``timeout`` seconds (fails the test otherwise)."""
        fd = proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            r, _, _ = select.select([fd], [], [], max(left, 0))
            if not r:
                self.fail(f"no line from the child within {timeout} s (got {buf!r}); "
                          f"stderr: {self._stderr(proc)}")
            ch = os.read(fd, 1)
            if not ch:
                self.fail(f"the child closed stdout (got {buf!r}); stderr: {self._stderr(proc)}")
            buf += ch
        return buf.decode().strip()

    @staticmethod
    def _stderr(proc: subprocess.Popen) -> str:
        if proc.poll() is None:
            return "(still running)"
        return proc.stderr.read().decode(errors="replace")[-2000:]
