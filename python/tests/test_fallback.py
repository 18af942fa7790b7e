"""Without an agent: the lmdisc binary (a fake one first on PATH) for discover and
announce, children bound to the caller's lifetime, the rescanning REGISTRY, and
the error with neither an agent nor a binary."""

import os
import signal
import subprocess
import threading
import unittest
from unittest import mock

import lmdisc
import lmdisc.registry
from lmdisc import REGISTRY, LmdiscError, LmdiscUnavailable, NodeInfo

from .fakeagent import node
from .fakebin import FakeBin
from .util import Case, pid_gone, wait_until

REAL_BIN = os.environ.get("LMDISC_BIN")  # set by CTest: the real binary, used for --help only
# what tests/lab/sanitizer.lua looks for, and the sanitizers' exit code in
# the test environment (tests/tests.cmake)
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer",
                     "Sanitizer:DEADLYSIGNAL", "runtime error:")
SANITIZER_EXIT = 86


class FallbackCase(Case):
    def setUp(self):
        super().setUp()
        self.fake = FakeBin(self.tmp)
        os.environ["PATH"] = self.fake.bindir + os.pathsep + self.empty_bin

    def announce_child(self):
        """The pid of the one `lmdisc announce` child started so far."""
        self.assertTrue(self.fake.wait_for(lambda: self.fake.starts("announce")))
        pid = self.fake.starts("announce")[-1]["pid"]
        self.kill_later(pid)
        return pid


class DiscoverFallbackTest(FallbackCase):
    def test_discover_nodes_runs_lmdisc_discover_json(self):
        self.fake.set_discover({"type": "_lmserv._tcp", "source": "network", "complete": True, "elapsed": 1.01,
                                "nodes": [node("h1:8000"), node("h1b:8000"), node("h2:9000", port=9000, v4=None)]})
        found = lmdisc.discover_nodes()
        self.assertEqual(found, [NodeInfo("10.77.0.1", 8000, "gemma-2b-it Q4_0"),
                                 NodeInfo("fd77::1", 9000, "gemma-2b-it Q4_0")])
        (call,) = self.fake.starts("discover")
        self.assertEqual(call["argv"], ["discover", "--json", "--timeout", "5"])

    def test_discover_passes_the_timeout_and_returns_nodes(self):
        self.fake.set_discover({"type": "_lmserv._tcp", "complete": True, "nodes": [node("h1:8000")]})
        (n,) = lmdisc.discover(timeout=2)
        self.assertEqual((n.name, n.host, n.txt["model"]), ("h1:8000", "h1.local", "gemma"))
        self.assertEqual(self.fake.starts("discover")[0]["argv"][-2:], ["--timeout", "2"])

    def test_a_failing_discover_raises_its_message(self):
        self.fake.fail_discover("lmdisc discover: avahi-daemon is not running (start it: systemctl start "
                                "avahi-daemon)\n")
        with self.assertRaises(LmdiscError) as cm:
            lmdisc.discover_nodes()
        self.assertIn("avahi-daemon is not running", str(cm.exception))

    def test_lmdisc_bin_names_the_binary(self):
        os.environ["PATH"] = self.empty_bin
        os.environ["LMDISC_BIN"] = self.fake.path
        self.assertEqual(lmdisc.discover_nodes(), [])
        self.assertEqual(len(self.fake.starts("discover")), 1)


class AnnounceFallbackTest(FallbackCase):
    def test_announce_starts_lmdisc_announce_and_withdraw_stops_it(self):
        a = lmdisc.announce_self(8000, info="gemma-2b-it Q4_0", txt={"model": "gemma", "gpu": True})
        pid = self.announce_child()
        self.assertEqual(self.fake.starts("announce")[0]["argv"],
                         ["announce", "8000", "gemma-2b-it Q4_0", "--txt", "model=gemma", "--txt", "gpu",
                          "--ttl", "30"])
        self.assertTrue(a.wait_established(5))
        self.assertEqual((a.mode, a.name), ("process", "fakehost:8000"))
        self.assertIs(lmdisc.announce_self(8000, info="gemma-2b-it Q4_0", txt={"model": "gemma", "gpu": True}), a)
        a.withdraw()
        self.assertTrue(self.fake.terminated(pid), "the child did not get SIGTERM")
        self.assertTrue(wait_until(lambda: pid_gone(pid)))
        self.assertEqual(a.state, "withdrawn")

    def test_a_name_is_passed_with_name(self):
        a = lmdisc.announce_self(8000, name="box")
        self.announce_child()
        self.assertEqual(self.fake.starts("announce")[0]["argv"], ["announce", "8000", "", "--name", "box", "--ttl", "30"])
        self.assertTrue(a.wait_established(5))
        self.assertEqual(a.name, "box")

    def test_an_info_that_looks_like_an_option_is_not_one(self):
        lmdisc.announce_self(8000, info="-x 4-bit", txt={"k": "v"})
        self.announce_child()
        self.assertEqual(self.fake.starts("announce")[0]["argv"],
                         ["announce", "--txt", "k=v", "--ttl", "30", "--", "8000", "-x 4-bit"])

    def test_a_loglevel_the_binary_refuses_is_not_passed_on(self):
        os.environ["LOGLEVEL"] = "CRITICAL"
        self.assertEqual(lmdisc.discover_nodes(), [])
        os.environ["LOGLEVEL"] = "5"
        self.assertEqual(lmdisc.discover_nodes(), [])
        self.assertEqual([c["loglevel"] for c in self.fake.starts("discover")], ["ERROR", None])

    def test_set_txt_starts_the_child_again_with_the_new_txt(self):
        a = lmdisc.announce_self(8000, info="x", txt={"old": "1"})
        first = self.announce_child()
        self.assertTrue(a.wait_established(5))
        a.set_txt(load=3, old=None)
        self.assertTrue(self.fake.terminated(first))
        self.assertTrue(self.fake.wait_for(lambda: len(self.fake.starts("announce")) == 2))
        self.announce_child()
        self.assertEqual(self.fake.starts("announce")[1]["argv"], ["announce", "8000", "x", "--txt", "load=3", "--ttl", "30"])
        self.assertTrue(a.wait_established(5))

    def test_a_refused_announcement_raises_its_message(self):
        self.fake.refuse_announce("lmdisc announce: --txt x=...: TXT item is 300 bytes; at most 255\n")
        with self.assertRaises(LmdiscError) as cm:
            lmdisc.announce_self(8000, txt={"x": "y" * 298})
        self.assertIn("at most 255", str(cm.exception))

    def test_a_child_that_dies_is_started_again(self):
        a = lmdisc.announce_self(8000, info="x")
        pid = self.announce_child()
        self.assertTrue(a.wait_established(5))
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(self.fake.wait_for(lambda: len(self.fake.starts("announce")) == 2))
        self.announce_child()
        self.assertTrue(a.wait_established(5))

    def test_drain_without_an_agent_drains_our_announcements(self):
        a = lmdisc.announce_self(8000, info="x")
        self.announce_child()
        self.assertTrue(a.wait_established(5))
        self.assertEqual(lmdisc.drain(grace=0.2), {"state": "draining", "grace": 0.2})
        # the child announcing status=draining was started before drain() returned
        child = a._proc
        self.kill_later(child.pid)
        self.assertEqual(child.args[1:], ["announce", "8000", "x", "--txt", "status=draining", "--ttl", "30"])
        self.assertTrue(a.wait_state("withdrawn", timeout=5))
        self.assertIsNotNone(child.poll(), "the draining child still runs after the grace period")

    def _owner(self, code_after_ready):
        proc = self.spawn_python(
            "import os, sys, time, lmdisc\n"
            "a = lmdisc.announce_self(8124, info='gemma', txt={'model': 'gemma'})\n"
            "print('ready' if a.wait_established(5) else 'not established', flush=True)\n"
            + code_after_ready)
        self.assertEqual(self.read_line(proc), "ready")
        return proc, self.announce_child()

    def test_the_child_dies_with_its_sigkilled_parent(self):
        proc, child = self._owner("time.sleep(30)\n")
        self.assertFalse(pid_gone(child))
        os.kill(proc.pid, signal.SIGKILL)
        self.assertEqual(proc.wait(5), -signal.SIGKILL)
        self.assertTrue(self.fake.wait_for(lambda: self.fake.terminated(child)),
                        "the announce child outlived its SIGKILLed parent (no PDEATHSIG)")
        self.assertTrue(wait_until(lambda: pid_gone(child)))

    def test_a_forked_child_exiting_leaves_the_announcement_alone(self):
        proc, child = self._owner(
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    sys.exit(0)  # runs atexit handlers in the forked child\n"
            "os.waitpid(pid, 0)\n"
            "print('forked child gone', flush=True)\n"
            "time.sleep(30)\n")
        self.assertEqual(self.read_line(proc), "forked child gone")
        self.assertFalse(self.fake.terminated(child), "a forked child's exit withdrew its parent's announcement")
        self.assertFalse(pid_gone(child))

    def test_the_child_is_terminated_at_interpreter_exit(self):
        proc, child = self._owner("sys.exit(0)\n")
        self.assertEqual(proc.wait(10), 0)
        # atexit waits for the child: it is gone before the parent's exit, not after it
        self.assertTrue(self.fake.terminated(child), "the child was not terminated at exit")


class ThreadedAnnounceTest(FallbackCase):
    def test_a_child_started_from_a_short_lived_thread_survives_the_thread(self):
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("a", lmdisc.announce_self(8000, info="x")))
        t.start()
        t.join(10)
        self.assertFalse(t.is_alive())
        pid = self.announce_child()
        self.assertTrue(box["a"].wait_established(5))
        # PR_SET_PDEATHSIG follows the thread that forked: the spawner thread, not the caller's
        self.assertFalse(self.fake.wait_for(lambda: self.fake.terminated(pid), timeout=0.5))
        self.assertFalse(pid_gone(pid))


class RegistryFallbackTest(FallbackCase):
    def test_list_alive_rescans_and_expires(self):
        self.fake.set_discover({"complete": True, "nodes": [node("h1:8000"), node("h2:8000", v4="10.77.0.2")]})
        with mock.patch.object(lmdisc.registry, "_REFRESH_INTERVAL_S", 0.1), \
                mock.patch.object(lmdisc.registry, "_DEFAULT_TTL_S", 0.5):
            self.assertEqual([n.host for n in REGISTRY.list_alive()], ["10.77.0.1", "10.77.0.2"])
            self.assertEqual(self.fake.starts("discover")[0]["argv"], ["discover", "--json", "--timeout", "2"])
            self.fake.set_discover({"complete": True, "nodes": [node("h2:8000", v4="10.77.0.2")]})
            self.assertTrue(wait_until(lambda: [n.host for n in REGISTRY.list_alive()] == ["10.77.0.2"]),
                            "h1 did not expire")
            self.assertGreaterEqual(len(self.fake.starts("discover")), 2)
            self.assertEqual(REGISTRY.nodes()[0].name, "h2:8000")


class NeitherTest(Case):
    def test_neither_agent_nor_binary_says_what_to_install(self):
        sock = os.environ["LMDISC_SOCKET"]
        for call in (lambda: lmdisc.announce_self(8000, info="x"), lmdisc.discover_nodes, lmdisc.discover,
                     REGISTRY.list_alive, REGISTRY.nodes, lmdisc.drain):
            with self.subTest(call=call), self.assertRaises(LmdiscUnavailable) as cm:
                call()
            msg = str(cm.exception)
            self.assertIsInstance(cm.exception, RuntimeError)
            self.assertEqual(msg, f"no lmdisc agent at {sock} and no lmdisc binary on PATH: install the lmdisc "
                                  "package (apt install ./lmdisc_*.deb) and start it (systemctl start lmdisc), "
                                  "or set LMDISC_SOCKET")

    def test_the_default_socket_is_named(self):
        del os.environ["LMDISC_SOCKET"]
        if os.path.exists("/run/lmdisc/agent.sock"):
            self.skipTest("an agent runs on this host")
        with self.assertRaises(LmdiscUnavailable) as cm:
            lmdisc.discover_nodes()
        self.assertIn("no lmdisc agent at /run/lmdisc/agent.sock", str(cm.exception))

    def test_a_bad_lmdisc_bin_is_named(self):
        os.environ["LMDISC_BIN"] = os.path.join(self.tmp, "missing")
        with self.assertRaises(LmdiscUnavailable) as cm:
            lmdisc.discover_nodes()
        self.assertIn("LMDISC_BIN=", str(cm.exception))


class LoggingTest(Case):
    def test_loglevel_debug_shows_activity_on_stderr(self):
        fake = FakeBin(self.tmp)
        env = self.child_env(LOGLEVEL="DEBUG", PATH=fake.bindir)
        proc = self.spawn_python("import lmdisc; print(lmdisc.discover_nodes(timeout=1))", env)
        out, err = proc.communicate(timeout=10)
        self.assertEqual(out.decode().strip(), "[]")
        self.assertIn("lmdisc DEBUG: running", err.decode())


@unittest.skipUnless(REAL_BIN and os.access(REAL_BIN, os.X_OK), "LMDISC_BIN (the real binary) is not set")
class RealBinaryContractTest(unittest.TestCase):
    """The options the fallback passes exist in the real binary's --help (nothing is announced or scanned)."""

    def help(self, command):
        cp = subprocess.run([REAL_BIN, command, "--help"], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        # in the sanitizer build the binary is instrumented: a report fails
        # the test whatever the exit code (tests/lab/sanitizer.lua)
        output = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
        for marker in SANITIZER_MARKERS:
            self.assertNotIn(marker, output, output)
        self.assertNotEqual(cp.returncode, SANITIZER_EXIT, output)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        return cp.stdout.decode()

    def test_announce_takes_port_info_name_and_txt(self):
        text = self.help("announce")
        self.assertIn("Usage: lmdisc announce PORT [INFO]", text)
        for opt in ("--name", "--txt", "--ttl SECONDS"):
            self.assertIn(opt, text)

    def test_discover_takes_json_and_timeout(self):
        text = self.help("discover")
        for opt in ("--json", "--timeout"):
            self.assertIn(opt, text)


if __name__ == "__main__":
    unittest.main()
