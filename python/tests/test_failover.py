"""A server stays announced whatever the agent does: when the agent goes away
the announcement falls back to an `lmdisc announce` child, and it moves back
to the agent within a second of the agent's socket reappearing (the socket's
directory is watched, nothing is polled). The registry keeps answering while
the agent restarts, and stops its rescans when the agent is back."""

import os
import shutil
import socket
import threading
import time
import unittest
from unittest import mock

import lmdisc
import lmdisc._agent
import lmdisc._watch
import lmdisc.events
import lmdisc.mdns
import lmdisc.registry
from lmdisc import REGISTRY, LmdiscUnavailable, NodeInfo

from .fakeagent import FakeAgent, node
from .fakebin import FakeBin
from .util import Case, wait_until


class FailoverCase(Case):
    """A fake agent on SOCK (in a directory of its own, as /run/lmdisc), the
    fake binary on PATH, and the package's real retry delays: a test that
    passes only thanks to a short backoff would prove nothing."""

    def setUp(self):
        super().setUp()
        for attr, val in (("_RETRY_INITIAL_S", 0.5), ("_RETRY_MAX_S", 30.0)):
            p = mock.patch.object(lmdisc.mdns, attr, val)
            p.start()
            self.addCleanup(p.stop)
        self.rundir = os.path.join(self.tmp, "run", "lmdisc")
        os.makedirs(self.rundir)
        self.agent = self.start_agent()
        os.environ["LMDISC_SOCKET"] = self.agent.path
        self.fake = FakeBin(self.tmp)
        os.environ["PATH"] = self.fake.bindir + os.pathsep + self.empty_bin
        self.addCleanup(lmdisc.mdns._withdraw_all)  # before the agents stop (cleanups run last first)
        # every connection attempt to the agent, with its time
        self.connects = []
        real = lmdisc._agent.connect

        def counting(*a, **kw):
            self.connects.append(time.monotonic())
            return real(*a, **kw)

        p = mock.patch.object(lmdisc._agent, "connect", counting)
        p.start()
        self.addCleanup(p.stop)

    def start_agent(self):
        agent = FakeAgent(self.rundir).start()
        self.addCleanup(agent.stop)
        return agent

    def children(self):
        return self.fake.starts("announce")

    def established_through_the_agent(self, agent):
        self.assertTrue(agent.wait_for(lambda: any(not s.closed.is_set() for s in agent.registrations), 5),
                        "no registration with the agent")

    def fall_back(self, a):
        """Stop the agent; the announcement must be taken over by a child."""
        self.agent.stop()
        self.assertTrue(self.fake.wait_for(lambda: len(self.children()) == 1, 5),
                        f"no lmdisc announce child after the agent stopped ({a!r})")
        self.assertTrue(a.wait_established(5), repr(a))
        self.assertEqual(a.mode, "process")
        pid = self.children()[0]["pid"]
        self.kill_later(pid)
        return pid


class FallbackTest(FailoverCase):
    def test_the_agent_stopping_hands_the_announcement_to_a_child_with_short_ttls(self):
        a = lmdisc.announce_self(8000, info="gemma-2b-it Q4_0", name="box", txt={"model": "gemma"})
        self.assertTrue(a.wait_established(5))
        self.assertEqual(a.mode, "agent")
        t0 = time.monotonic()
        self.fall_back(a)
        took = time.monotonic() - t0
        self.assertLess(took, 2.0, f"the child announced {took:.2f} s after the agent stopped")
        (start,) = self.children()
        # half the registry's ttl, as the agent publishes its records; not avahi's 75 minutes
        self.assertEqual(start["argv"], ["announce", "8000", "gemma-2b-it Q4_0", "--name", "box",
                                         "--txt", "model=gemma", "--ttl", "30"])
        self.assertEqual(a.name, "box")

    def test_the_ttl_follows_the_registry_ttl(self):
        with mock.patch.object(lmdisc.registry, "_DEFAULT_TTL_S", 17):
            a = lmdisc.announce_self(8000, name="box")
            self.assertTrue(a.wait_established(5))
            self.fall_back(a)
        self.assertEqual(self.children()[0]["argv"][-2:], ["--ttl", "8"])

    def test_back_to_the_agent_within_a_second_of_its_socket_reappearing(self):
        a = lmdisc.announce_self(8000, info="x", name="box")
        self.assertTrue(a.wait_established(5))
        child = self.fall_back(a)
        self.connects.clear()
        outage = threading.Event()
        outage.wait(1.6)  # the agent stays away for a while: nothing is tried meanwhile
        self.assertLessEqual(len(self.connects), 1, "the agent's socket was polled while it was gone")
        t0 = time.monotonic()
        agent2 = self.start_agent()
        self.assertTrue(agent2.wait_for(lambda: len(agent2.registrations) == 1, 3), "not registered again")
        took = time.monotonic() - t0
        self.assertLess(took, 1.0, f"registered with the agent {took:.2f} s after its socket came back")
        # the child withdrew before the agent was asked: both cannot hold the name on one avahi-daemon
        self.assertTrue(self.fake.terminated(child))
        self.assertTrue(a.wait_established(5))
        self.assertEqual((a.mode, a.name), ("agent", "box"))
        self.assertEqual(agent2.registrations[0].request.body, {"port": 8000, "info": "x", "txt": {}})
        self.assertEqual(len(self.children()), 1, "a second child was started")

    def test_a_socket_that_refuses_counts_as_gone_until_a_new_agent_binds_it(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        self.agent.stop()
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.agent.path)  # a crashed agent's socket: bound, nobody listening
        self.addCleanup(stale.close)
        self.assertTrue(self.fake.wait_for(lambda: len(self.children()) == 1, 5))
        self.kill_later(self.children()[0]["pid"])
        self.assertTrue(a.wait_established(5))
        os.unlink(self.agent.path)  # the new agent replaces the stale socket
        t0 = time.monotonic()
        agent2 = self.start_agent()
        self.assertTrue(agent2.wait_for(lambda: len(agent2.registrations) == 1, 3))
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertTrue(a.wait_established(5))
        self.assertEqual(a.mode, "agent")

    def test_the_socket_directory_removed_and_made_again(self):
        # systemd removes RuntimeDirectory=lmdisc when the agent stops
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        self.fall_back(a)
        shutil.rmtree(self.rundir)
        self.connects.clear()
        threading.Event().wait(0.5)
        t0 = time.monotonic()
        os.makedirs(self.rundir)
        agent2 = self.start_agent()
        self.assertTrue(agent2.wait_for(lambda: len(agent2.registrations) == 1, 3))
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertTrue(a.wait_established(5))
        self.assertLessEqual(len(self.connects), 10, "too many attempts for one agent start")

    def test_agent_restarts_back_and_forth(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        agent = self.agent
        for i in range(3):
            agent.stop()
            self.assertTrue(self.fake.wait_for(lambda: len(self.children()) == i + 1, 5), f"round {i}")
            self.kill_later(self.children()[-1]["pid"])
            self.assertTrue(a.wait_state("established", timeout=5))
            agent = FakeAgent(self.rundir).start()
            self.addCleanup(agent.stop)
            self.assertTrue(agent.wait_for(lambda: len(agent.registrations) == 1, 3), f"round {i}")
            self.assertTrue(wait_until(lambda: a.mode == "agent" and a.state == "established"), repr(a))
            self.assertTrue(self.fake.terminated(self.children()[-1]["pid"]))

    def test_without_a_binary_it_waits_for_the_agent_and_comes_back_at_once(self):
        os.environ["PATH"] = self.empty_bin
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        self.agent.stop()
        self.assertTrue(a.wait_state("registering", timeout=5))
        threading.Event().wait(1.6)  # longer than the first steps of any backoff
        t0 = time.monotonic()
        agent2 = self.start_agent()
        self.assertTrue(agent2.wait_for(lambda: len(agent2.registrations) == 1, 3))
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertTrue(a.wait_established(5))

    def test_withdraw_during_the_fallback_stops_the_child_and_registers_nowhere(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        child = self.fall_back(a)
        a.withdraw()
        self.assertTrue(self.fake.terminated(child))
        self.assertFalse(a._thread.is_alive())
        agent2 = self.start_agent()
        self.assertFalse(agent2.wait_for(lambda: agent2.registrations, 0.5), "a withdrawn announcement came back")
        self.assertEqual(len(self.children()), 1)

    def test_set_txt_during_the_fallback_reaches_the_child_and_then_the_agent(self):
        a = lmdisc.announce_self(8000, name="box", txt={"load": "1"})
        self.assertTrue(a.wait_established(5))
        self.fall_back(a)
        a.set_txt(load=2)
        self.assertTrue(self.fake.wait_for(lambda: len(self.children()) == 2))
        self.kill_later(self.children()[1]["pid"])
        self.assertIn("load=2", self.children()[1]["argv"])
        agent2 = self.start_agent()
        self.assertTrue(agent2.wait_for(lambda: len(agent2.registrations) == 1, 3))
        self.assertEqual(agent2.registrations[0].request.body["txt"], {"load": "2"})

    def test_an_agent_that_drops_every_registration_at_once_is_no_busy_loop(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        self.agent.drop_registrations = True
        self.agent.registrations[0].drop()
        # the child announces meanwhile; the agent is asked again after 0.5 s, 1 s, 2 s ...
        self.assertTrue(self.fake.wait_for(lambda: self.children(), 5))
        self.kill_later(self.children()[0]["pid"])
        threading.Event().wait(2.0)
        puts = len(self.agent.find("PUT"))
        self.assertLessEqual(puts, 5, f"{puts} registrations in 2 s")
        self.agent.drop_registrations = False
        self.assertTrue(self.agent.wait_for(lambda: any(not s.closed.is_set() for s in self.agent.registrations), 10))
        self.assertTrue(wait_until(lambda: a.mode == "agent" and a.state == "established", 5))

    def test_a_name_another_connection_holds_starts_no_child(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        # the agent still holds the name for a connection it has not seen close: 409
        self.agent.reject["box"] = (409, 'the name "box" is registered by another connection')
        self.agent.registrations[0].drop()
        self.assertTrue(self.agent.wait_for(lambda: len(self.agent.find("PUT")) == 2, 5))
        self.assertTrue(wait_until(lambda: a.mode is None and a.state == "registering", 2), repr(a))
        del self.agent.reject["box"]
        self.assertTrue(self.agent.wait_for(lambda: any(not s.closed.is_set() for s in self.agent.registrations), 5))
        self.assertTrue(wait_until(lambda: a.mode == "agent" and a.state == "established", 5))
        self.assertEqual(self.children(), [], "a child would collide with the name the agent announces")

    def test_starting_without_an_agent_moves_to_the_agent_when_it_comes(self):
        self.agent.stop()
        a = lmdisc.announce_self(8000, name="box")
        self.assertEqual(a.mode, "process")
        self.assertTrue(a.wait_established(5))
        child = self.children()[0]["pid"]
        self.kill_later(child)
        agent2 = self.start_agent()
        self.assertTrue(agent2.wait_for(lambda: len(agent2.registrations) == 1, 3))
        self.assertTrue(self.fake.terminated(child))
        self.assertTrue(wait_until(lambda: a.mode == "agent" and a.state == "established"))


class RegistryOutageTest(FailoverCase):
    def peers(self):
        return [NodeInfo("10.77.0.1", 8000, "gemma-2b-it Q4_0"), NodeInfo("10.77.0.2", 8000, "llama-3 8B")]

    def test_list_alive_keeps_answering_without_a_binary_while_the_agent_restarts(self):
        os.environ["PATH"] = self.empty_bin
        self.assertEqual(REGISTRY.list_alive(), self.peers())
        self.agent.stop()
        # the agent is gone: the last good list, not LmdiscUnavailable
        self.assertEqual(REGISTRY.list_alive(), self.peers())
        # a socket that refuses, or an agent that resets the connection
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.agent.path)
        self.addCleanup(stale.close)
        self.assertEqual(REGISTRY.list_alive(), self.peers())
        stale.close()
        os.unlink(self.agent.path)
        agent2 = self.start_agent()
        agent2.peers = agent2.peers[1:]
        self.assertEqual(REGISTRY.list_alive(), self.peers()[1:])

    def test_the_last_good_list_expires(self):
        os.environ["PATH"] = self.empty_bin
        with mock.patch.object(lmdisc.registry, "_DEFAULT_TTL_S", 0.3):
            self.assertEqual(len(REGISTRY.list_alive()), 2)
            self.agent.stop()
            self.assertEqual(len(REGISTRY.list_alive()), 2)
            self.assertTrue(wait_until(lambda: REGISTRY.list_alive() == [], 3))

    def test_a_5xx_from_a_starting_agent_is_not_raised(self):
        self.assertEqual(len(REGISTRY.list_alive()), 2)
        self.agent.fail[("GET", "/v1/peers")] = (503, "starting")
        self.assertEqual(REGISTRY.list_alive(), self.peers())

    def test_a_5xx_before_any_answer_without_a_binary_is_the_agents_error(self):
        os.environ["PATH"] = self.empty_bin
        self.agent.fail[("GET", "/v1/peers")] = (503, "starting")
        with self.assertRaises(lmdisc.AgentError) as cm:
            REGISTRY.list_alive()
        self.assertEqual(cm.exception.status, 503)

    def test_the_rescan_thread_stops_once_the_agent_is_back(self):
        self.fake.set_discover({"complete": True, "nodes": [node("h9:8000", v4="10.77.0.9")]})
        self.assertEqual(REGISTRY.list_alive(), self.peers())
        self.agent.stop()
        t0 = time.monotonic()
        alive = REGISTRY.list_alive()
        self.assertLess(time.monotonic() - t0, 0.5, "list_alive() waited for a scan during an outage")
        self.assertEqual(alive[:2], self.peers())
        thread = REGISTRY._thread
        self.assertIsNotNone(thread, "no rescans while the agent is gone")
        self.assertTrue(self.fake.wait_for(lambda: self.fake.starts("discover")))
        self.assertTrue(wait_until(lambda: NodeInfo("10.77.0.9", 8000, "gemma-2b-it Q4_0") in REGISTRY.list_alive()))
        agent2 = self.start_agent()
        # nobody calls list_alive(): the thread sees the socket come back by itself
        thread.join(2)
        self.assertFalse(thread.is_alive(), "the rescan thread still runs with the agent back")
        scans = len(self.fake.starts("discover"))
        self.assertEqual(REGISTRY.list_alive(), self.peers())
        self.assertTrue(agent2.find("GET", "/v1/peers"))
        self.assertEqual(len(self.fake.starts("discover")), scans)

    def test_list_alive_answered_by_the_agent_ends_the_rescans(self):
        self.agent.stop()
        with mock.patch.object(lmdisc.registry, "_REFRESH_INTERVAL_S", 0.2):
            REGISTRY.list_alive()
            thread = REGISTRY._thread
            self.assertTrue(self.fake.wait_for(lambda: len(self.fake.starts("discover")) >= 2))
            self.start_agent()
            self.assertEqual(REGISTRY.list_alive(), self.peers())
            self.assertIsNone(REGISTRY._thread)
            thread.join(2)
            self.assertFalse(thread.is_alive())
            scans = len(self.fake.starts("discover"))
            threading.Event().wait(0.5)
            self.assertEqual(len(self.fake.starts("discover")), scans, "rescans go on with the agent back")

    def test_never_an_agent_and_no_binary_still_says_what_to_install(self):
        self.agent.stop()
        os.environ["PATH"] = self.empty_bin
        with self.assertRaises(LmdiscUnavailable):
            REGISTRY.list_alive()


class OwnServicesTest(FailoverCase):
    """This host's own services are not peers: the same rule with and without an agent."""

    def setUp(self):
        super().setUp()
        mine = node("me:8000", v4="10.77.0.5", local=True, self=True)
        other_local = node("me:9000", port=9000, v4="10.77.0.5", local=True)
        peer = node("h2:8000", v4="10.77.0.2")
        self.agent.peers = [mine, other_local, peer]
        self.fake.set_discover({"complete": True, "nodes": [mine, other_local, peer]})

    def test_with_an_agent(self):
        self.assertEqual([n.name for n in REGISTRY.nodes()], ["h2:8000"])

    def test_without_an_agent(self):
        self.agent.stop()
        self.assertEqual([n.name for n in REGISTRY.nodes()], ["h2:8000"])

    def test_discover_lists_them(self):
        self.agent.stop()
        self.assertEqual([n.name for n in lmdisc.discover()], ["me:8000", "me:9000", "h2:8000"])


class WatchOutageTest(FailoverCase):
    def setUp(self):
        super().setUp()
        for attr, val in (("_RETRY_INITIAL_S", 0.2), ("_RETRY_MAX_S", 30.0)):  # the package's own
            p = mock.patch.object(lmdisc.events, attr, val)
            p.start()
            self.addCleanup(p.stop)

    def test_watch_reconnects_within_a_second_of_the_socket_coming_back(self):
        with lmdisc.watch() as stream:
            got = []
            reader = threading.Thread(target=lambda: got.extend(e for e in stream), daemon=True)
            reader.start()
            self.assertTrue(wait_until(lambda: len(got) == 2))
            self.connects.clear()
            self.agent.stop()
            threading.Event().wait(1.6)
            n = len(self.connects)
            t0 = time.monotonic()
            agent2 = self.start_agent()
            self.assertTrue(agent2.wait_for(lambda: agent2.event_streams, 3))
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertLessEqual(n, 4, "watch() polled the socket while the agent was gone")
        reader.join(5)
        self.assertFalse(reader.is_alive())


class SocketWatchTest(Case):
    def test_events_on_the_path_wake_and_others_do_not(self):
        path = os.path.join(self.tmp, "a", "b", "agent.sock")
        with lmdisc._watch.SocketWatch(path) as w:
            self.assertFalse(w.polling)
            self.assertFalse(w.wait(0.05))
            os.makedirs(os.path.dirname(path))
            self.assertTrue(w.wait(1))
            open(os.path.join(self.tmp, "a", "b", "other"), "w").close()
            self.assertFalse(w.wait(0.1))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            self.addCleanup(s.close)
            self.assertTrue(w.wait(1))
            os.unlink(path)
            self.assertTrue(w.wait(1))
            shutil.rmtree(os.path.join(self.tmp, "a", "b"))  # held by the bound socket: its parent tells
            self.assertTrue(w.wait(1))
            os.makedirs(os.path.dirname(path))
            self.assertTrue(w.wait(1))
            threading.Timer(0.05, w.wake).start()
            self.assertTrue(w.wait(5))

    def test_close_ends_a_wait_in_another_thread(self):
        w = lmdisc._watch.SocketWatch(os.path.join(self.tmp, "agent.sock"))
        threading.Timer(0.05, w.close).start()
        t0 = time.monotonic()
        self.assertTrue(w.wait(5))
        self.assertLess(time.monotonic() - t0, 2)

    def test_without_inotify_it_polls_once_a_second(self):
        with mock.patch.object(lmdisc._watch, "_inotify", None):
            w = lmdisc._watch.SocketWatch(os.path.join(self.tmp, "agent.sock"))
        self.addCleanup(w.close)
        self.assertTrue(w.polling)
        t0 = time.monotonic()
        self.assertTrue(w.wait(5))
        self.assertAlmostEqual(time.monotonic() - t0, lmdisc._watch.POLL_S, delta=0.3)
        self.assertFalse(w.wait(0.05))


if __name__ == "__main__":
    unittest.main()
