"""With an agent: the registration stream of announce_self, withdraw on close
(also when the owning process dies), re-registration, set_txt."""

import os
import signal
import unittest
from urllib.parse import quote

import lmdisc
from lmdisc import AgentError, LmdiscError

from .fakeagent import FakeAgent
from .fakebin import FakeBin
from .test_agent import AgentCase


class AnnounceTest(AgentCase):
    def live(self, name=None):
        return [s for s in self.agent.registrations if not s.closed.is_set() and (name is None or s.name == name)]

    def test_announce_puts_the_service_and_follows_the_stream(self):
        a = lmdisc.announce_self(8000, info="gemma-2b-it Q4_0", txt={"model": "gemma"})
        self.assertTrue(a.wait_established(5))
        name = lmdisc.default_name(8000)
        (req,) = self.agent.find("PUT")
        self.assertEqual(req.target, "/v1/services/" + quote(name, safe=""))
        self.assertEqual(req.body, {"port": 8000, "info": "gemma-2b-it Q4_0", "txt": {"model": "gemma"}})
        self.assertEqual((a.name, a.state, a.mode), (name, "established", "agent"))
        self.assertTrue(a.active)

    def test_default_name_is_hostname_and_port(self):
        self.assertRegex(lmdisc.default_name(8000), r"^[^.]+:8000$")

    def test_the_name_is_url_encoded_in_the_path(self):
        a = lmdisc.announce_self(8001, name="gpu box/1 #ä")
        self.assertTrue(a.wait_established(5))
        (req,) = self.agent.find("PUT")
        self.assertEqual(req.target, "/v1/services/gpu%20box%2F1%20%23%C3%A4")
        self.assertEqual(req.path, "/v1/services/gpu box/1 #ä")

    def test_a_second_call_with_the_same_port_returns_the_same_announcement(self):
        a = lmdisc.announce_self(8000, info="x")
        self.assertIs(lmdisc.announce_self(8000, info="x"), a)
        self.assertIsNot(lmdisc.announce_self(8002, info="x"), a)
        self.assertEqual(len(self.agent.find("PUT")), 2)

    def test_withdraw_closes_the_registration_connection(self):
        a = lmdisc.announce_self(8000, info="x")
        self.assertTrue(a.wait_established(5))
        (stream,) = self.agent.registrations
        a.withdraw()
        self.assertTrue(stream.closed.wait(5), "the agent did not see the connection close")
        self.assertEqual(stream.closed_by, "client")
        self.assertEqual(a.state, "withdrawn")
        self.assertFalse(a.active)
        # a new call announces again
        b = lmdisc.announce_self(8000, info="x")
        self.assertIsNot(b, a)
        self.assertTrue(b.wait_established(5))

    def test_context_manager_withdraws(self):
        with lmdisc.announce_self(8000) as a:
            self.assertTrue(a.wait_established(5))
            (stream,) = self.agent.registrations
        self.assertTrue(stream.closed.wait(5))

    def _owner_dies(self, code_after_ready):
        env = self.child_env(LMDISC_SOCKET=self.agent.path)
        proc = self.spawn_python(
            "import os, sys, time, lmdisc\n"
            "a = lmdisc.announce_self(8123, info='x')\n"
            "print('ready' if a.wait_established(5) else 'not established', flush=True)\n"
            + code_after_ready, env)
        self.assertEqual(self.read_line(proc), "ready")
        self.assertTrue(self.agent.wait_for(lambda: len(self.agent.registrations) == 1))
        return proc, self.agent.registrations[0]

    def test_the_agent_sees_eof_when_the_owning_process_exits(self):
        proc, stream = self._owner_dies("os._exit(0)\n")
        self.assertEqual(proc.wait(5), 0)
        self.assertTrue(stream.closed.wait(5), "the registration outlived its process")
        self.assertEqual(stream.closed_by, "client")

    def test_the_agent_sees_eof_when_the_owning_process_is_killed(self):
        proc, stream = self._owner_dies("time.sleep(30)\n")
        os.kill(proc.pid, signal.SIGKILL)
        self.assertEqual(proc.wait(5), -signal.SIGKILL)
        self.assertTrue(stream.closed.wait(5), "the registration outlived its process")

    def test_a_forked_child_does_not_keep_the_registration_open(self):
        proc, stream = self._owner_dies(
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    time.sleep(30)\n"
            "    os._exit(0)\n"
            "print(pid, flush=True)\n"
            "os._exit(0)\n")
        forked = int(self.read_line(proc))
        self.kill_later(forked)
        self.assertEqual(proc.wait(5), 0)
        self.assertTrue(stream.closed.wait(5), "the registration lived on in the forked child")

    def test_renamed_updates_the_name(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        self.agent.registrations[0].send({"state": "renamed", "name": "box #2"})
        self.assertTrue(a.wait_state("renamed", timeout=5))
        self.assertEqual((a.name, a.requested_name), ("box #2", "box"))
        self.agent.registrations[0].send({"state": "established", "name": "box #2"})
        self.assertTrue(a.wait_established(5))

    def test_withdrawn_by_the_agent_is_final(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        self.agent.registrations[0].send({"state": "withdrawn", "reason": "drained"})
        self.assertTrue(a.wait_state("withdrawn", timeout=5))
        self.assertEqual(a.reason, "drained")
        a._thread.join(5)
        self.assertFalse(a._thread.is_alive())
        self.assertEqual(len(self.agent.find("PUT")), 1)
        with self.assertRaises(LmdiscError):
            a.set_txt(load=1)

    def test_registers_again_after_the_agent_drops_the_connection(self):
        a = lmdisc.announce_self(8000, name="box", txt={"model": "gemma", "old": "1"})
        self.assertTrue(a.wait_established(5))
        a.set_txt(load=3, old=None)
        self.agent.registrations[0].drop()
        self.assertTrue(self.agent.wait_for(lambda: len(self.live("box")) == 1 and len(self.agent.find("PUT")) == 2),
                        "no second registration")
        self.assertTrue(a.wait_established(5))
        second = self.agent.find("PUT")[1]
        self.assertEqual(second.body, {"port": 8000, "info": "", "txt": {"model": "gemma", "load": "3"}})
        self.assertEqual(self.agent.registrations[0].closed_by, "server")

    def test_registers_again_when_the_agent_comes_back(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        self.agent.stop()  # the agent goes away ...
        self.assertTrue(a.wait_state("registering", timeout=5))
        agent2 = FakeAgent(self.tmp).start()  # ... and a new one listens on the same socket
        self.addCleanup(agent2.stop)
        self.assertTrue(agent2.wait_for(lambda: len(agent2.registrations) == 1))
        self.assertTrue(a.wait_established(5))

    def test_a_conflict_raises_the_agents_message(self):
        self.agent.reject["taken"] = (409, 'the name "taken" is registered by another connection')
        with self.assertRaises(AgentError) as cm:
            lmdisc.announce_self(8000, name="taken")
        self.assertEqual(cm.exception.status, 409)
        self.assertIn("registered by another connection", str(cm.exception))

    def test_the_agent_refusing_txt_raises(self):
        self.agent.reject["big"] = (400, "the TXT record would be 1400 bytes; keep it under 1300")
        with self.assertRaises(AgentError) as cm:
            lmdisc.announce_self(8000, name="big", txt={"x": "y" * 250})
        self.assertEqual(cm.exception.status, 400)

    def test_bad_arguments_are_refused_before_any_request(self):
        for kwargs in ({"port": 0}, {"port": 70000}, {"port": 8000, "name": "x" * 64}, {"port": 8000, "name": ""},
                       {"port": 8000, "txt": {"a=b": "c"}}, {"port": 8000, "txt": {"info": "x"}},
                       {"port": 8000, "txt": {"k": object()}}):
            with self.subTest(kwargs=kwargs), self.assertRaises((ValueError, TypeError)):
                lmdisc.announce_self(**kwargs)
        self.assertEqual(self.agent.requests, [])

    def test_set_txt_sends_a_patch(self):
        a = lmdisc.announce_self(8000, name="box", txt={"old": "x"})
        self.assertTrue(a.wait_established(5))
        got = a.set_txt(load=3, old=None, gpu=True)
        (req,) = self.agent.find("PATCH")
        self.assertEqual(req.target, "/v1/services/box")
        self.assertEqual(req.body, {"txt": {"load": "3", "old": None, "gpu": True}})
        self.assertEqual(got, {"load": "3", "gpu": True})
        self.assertEqual(a.txt, {"load": "3", "gpu": True})

    def test_set_txt_accepts_keys_that_are_not_identifiers_and_info(self):
        a = lmdisc.announce_self(8000, name="box")
        a.set_txt({"model-name": "gemma"}, info="gemma-7b")
        (req,) = self.agent.find("PATCH")
        self.assertEqual(req.body, {"txt": {"model-name": "gemma"}, "info": "gemma-7b"})
        self.assertEqual(a.info, "gemma-7b")

    def test_module_set_txt_applies_to_the_default_announcement(self):
        with self.assertRaises(LmdiscError):
            lmdisc.set_txt(load=1)
        lmdisc.announce_self(8000, name="first")
        lmdisc.announce_self(8001, name="second")
        lmdisc.set_txt(status="up")
        (req,) = self.agent.find("PATCH")
        self.assertEqual((req.path, req.body), ("/v1/services/first", {"txt": {"status": "up"}}))

    def test_drain_through_the_agent_ends_with_withdrawn(self):
        a = lmdisc.announce_self(8000, name="box")
        self.assertTrue(a.wait_established(5))
        lmdisc.drain(grace=0)
        self.agent.registrations[0].send({"state": "withdrawn", "reason": "drain"})
        self.assertTrue(a.wait_state("withdrawn", timeout=5))

    def test_an_agent_without_the_registration_api_falls_back_to_the_binary(self):
        self.agent.registration_api = False
        fake = FakeBin(self.tmp)
        os.environ["PATH"] = fake.bindir
        a = lmdisc.announce_self(8000, info="x")
        self.assertEqual(a.mode, "process")
        self.assertTrue(a.wait_established(5))
        self.assertEqual(fake.starts("announce")[0]["argv"], ["announce", "8000", "x", "--ttl", "30"])

    def test_an_agent_without_the_registration_api_and_no_binary_says_upgrade(self):
        self.agent.registration_api = False
        with self.assertRaises(AgentError) as cm:
            lmdisc.announce_self(8000, info="x")
        self.assertIn("upgrade the lmdisc package", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
