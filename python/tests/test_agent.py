"""With an agent: the requests discover_nodes, discover, REGISTRY and drain send, and what they return."""

import os
import socket
import unittest

import lmdisc
from lmdisc import REGISTRY, AgentError, LmdiscUnavailable, Node, NodeInfo

from .fakeagent import FakeAgent, node
from .util import Case


class AgentCase(Case):
    def setUp(self):
        super().setUp()
        self.agent = FakeAgent(self.tmp).start()
        self.addCleanup(self.agent.stop)
        self.addCleanup(lmdisc.mdns._withdraw_all)  # before the agent stops (cleanups run last first)
        os.environ["LMDISC_SOCKET"] = self.agent.path


class DiscoverTest(AgentCase):
    def test_discover_nodes_asks_the_agent_for_services(self):
        found = lmdisc.discover_nodes()
        reqs = self.agent.find("GET", "/v1/services")
        self.assertEqual(len(reqs), 1)
        self.assertIsNone(reqs[0].body)
        self.assertEqual(found, [NodeInfo("10.77.0.1", 8000, "gemma-2b-it Q4_0"), NodeInfo("fd77::3", 9000, None)])

    def test_discover_nodes_deduplicates(self):
        self.agent.services = [node("h1:8000"), node("h1-again:8000"), node("h2:8000", v4="10.77.0.2")]
        self.assertEqual([n.host for n in lmdisc.discover_nodes()], ["10.77.0.1", "10.77.0.2"])

    def test_discover_returns_nodes_with_every_field(self):
        nodes = lmdisc.discover(timeout=2)
        self.assertTrue(all(isinstance(n, Node) for n in nodes))
        h1 = nodes[0]
        self.assertEqual((h1.name, h1.host, h1.port, h1.domain), ("h1:8000", "h1.local", 8000, "local"))
        self.assertEqual([a.address for a in h1.addresses], ["fd77::1", "10.77.0.1"])
        self.assertEqual(h1.txt, {"info": "gemma-2b-it Q4_0", "model": "gemma"})

    def test_discover_asks_again_while_the_agent_is_settling(self):
        self.agent.services_incomplete = 2
        self.assertEqual(len(lmdisc.discover(timeout=5)), 2)
        self.assertEqual(len(self.agent.find("GET", "/v1/services")), 3)

    def test_bad_timeout_is_refused(self):
        with self.assertRaises(ValueError):
            lmdisc.discover_nodes(timeout=0)

    def test_agent_errors_carry_the_agents_message(self):
        self.agent.fail[("GET", "/v1/services")] = (503, "avahi-daemon is not running; start it")
        with self.assertRaises(AgentError) as cm:
            lmdisc.discover_nodes()
        self.assertEqual(cm.exception.status, 503)
        self.assertIn("avahi-daemon is not running; start it", str(cm.exception))
        self.assertIsInstance(cm.exception, RuntimeError)


class RegistryTest(AgentCase):
    def test_list_alive_asks_the_agent_each_call(self):
        first = REGISTRY.list_alive()
        self.agent.peers = self.agent.peers[:1]
        second = REGISTRY.list_alive()
        self.assertEqual(len(self.agent.find("GET", "/v1/peers")), 2)
        self.assertEqual(first, [NodeInfo("10.77.0.1", 8000, "gemma-2b-it Q4_0"),
                                 NodeInfo("10.77.0.2", 8000, "llama-3 8B")])
        self.assertEqual(second, first[:1])

    def test_nodes_have_every_field(self):
        h2 = REGISTRY.nodes()[1]
        self.assertEqual(h2.name, "h2:8000")
        self.assertIs(h2.routable, True)
        self.assertEqual(h2.sources, ("mdns",))
        self.assertEqual(h2.last_seen, 1795472690.5)

    def test_registry_is_importable_under_both_names(self):
        import lmdisc.registry
        self.assertIs(lmdisc.registry.REGISTRY, lmdisc.REGISTRY)
        self.assertEqual(lmdisc.registry._DEFAULT_TTL_S, 60)
        self.assertEqual(lmdisc.registry._REFRESH_INTERVAL_S, 30)


class DrainTest(AgentCase):
    def test_drain_posts_the_grace(self):
        self.assertEqual(lmdisc.drain(grace=5), {"state": "draining", "grace": 5})
        (req,) = self.agent.find("POST", "/v1/self/drain")
        self.assertEqual(req.body, {"grace": 5})
        self.assertEqual(req.headers.get("content-type"), "application/json")

    def test_drain_without_grace_sends_no_body(self):
        self.assertEqual(lmdisc.drain()["state"], "draining")
        (req,) = self.agent.find("POST", "/v1/self/drain")
        self.assertEqual(req.raw, b"")

    def test_drain_refuses_a_negative_grace(self):
        with self.assertRaises(ValueError):
            lmdisc.drain(grace=-1)
        self.assertEqual(self.agent.find("POST"), [])


class NoAgentTest(Case):
    def test_a_socket_that_refuses_connections_counts_as_no_agent(self):
        path = os.path.join(self.tmp, "dead.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)  # bound, never listening: connect() is refused, as after an agent crash
        self.addCleanup(s.close)
        os.environ["LMDISC_SOCKET"] = path
        with self.assertRaises(LmdiscUnavailable) as cm:
            lmdisc.discover_nodes()
        self.assertIn(f"no lmdisc agent at {path}", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
