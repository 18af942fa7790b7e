"""Node, NodeInfo and Address: parsing the agent's JSON, choosing NodeInfo.host."""

import dataclasses
import unittest

from lmdisc import Address, Node, NodeInfo
from lmdisc.node import dedup

FULL = {
    "name": "h1:8000", "type": "_lmserv._tcp", "domain": "local", "host": "h1.local", "port": 8000,
    "info": "gemma-2b-it Q4_0",
    "addresses": [{"address": "fd77::1", "family": 6, "interface": "eth0"},
                  {"address": "10.77.0.1", "family": 4, "interface": "eth0"},
                  {"address": "10.88.0.1", "family": 4, "interface": "eth1"}],
    "txt": {"info": "gemma-2b-it Q4_0", "model": "gemma", "gpu": True, "raw": "\ufffd"},
    "txt_base64": {"raw": "/w=="},
    "local": True, "self": False, "routable": True, "sources": ["mdns", "static"],
    "first_seen": 1795472686.65, "last_seen": 1795472690, "trusted": True, "signer": "ops-key",
    "announcing": True, "future_field": {"x": 1},
}


class NodeTest(unittest.TestCase):
    def test_every_field_is_parsed(self):
        n = Node.from_json(FULL)
        self.assertEqual((n.name, n.type, n.domain, n.host, n.port, n.info),
                         ("h1:8000", "_lmserv._tcp", "local", "h1.local", 8000, "gemma-2b-it Q4_0"))
        self.assertEqual(n.addresses[0], Address("fd77::1", 6, "eth0"))
        self.assertEqual(len(n.addresses), 3)
        self.assertEqual(n.txt["model"], "gemma")
        self.assertIs(n.txt["gpu"], True)
        self.assertEqual(n.txt_bytes("raw"), b"\xff")
        self.assertEqual(n.txt_bytes("model"), b"gemma")
        self.assertIsNone(n.txt_bytes("gpu"))
        self.assertTrue(n.local)
        self.assertFalse(n.self)
        self.assertIs(n.routable, True)
        self.assertEqual(n.sources, ("mdns", "static"))
        self.assertEqual((n.first_seen, n.last_seen), (1795472686.65, 1795472690.0))
        self.assertIs(n.trusted, True)
        self.assertEqual(n.signer, "ops-key")
        self.assertEqual(n.extra, {"announcing": True, "future_field": {"x": 1}})

    def test_optional_fields_default_to_none(self):
        n = Node.from_json({"name": "a:1", "port": 1, "host": "a.local"})
        self.assertIsNone(n.routable)
        self.assertIsNone(n.trusted)
        self.assertIsNone(n.signer)
        self.assertIsNone(n.info)
        self.assertIsNone(n.first_seen)
        self.assertEqual(n.sources, ())
        self.assertEqual(n.addresses, ())

    def test_node_is_frozen_and_hashable(self):
        n = Node.from_json(FULL)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            n.port = 1
        self.assertEqual(hash(n), hash(Node.from_json(FULL)))
        self.assertEqual(n, Node.from_json(FULL))
        self.assertEqual(Node.from_json(n.to_json()), n)

    def test_node_info_host_is_the_first_ipv4_address(self):
        self.assertEqual(Node.from_json(FULL).node_info(), NodeInfo("10.77.0.1", 8000, "gemma-2b-it Q4_0"))

    def test_node_info_host_without_ipv4_is_the_first_address(self):
        n = Node.from_json({**FULL, "addresses": [{"address": "fd77::1", "family": 6, "interface": "eth0"}]})
        self.assertEqual(n.node_info().host, "fd77::1")
        ll = Node.from_json({**FULL, "addresses": [{"address": "fe80::1", "family": 6, "interface": "eth0"}]})
        self.assertEqual(ll.node_info().host, "fe80::1%eth0")

    def test_node_info_host_without_addresses_is_the_host_name(self):
        n = Node.from_json({**FULL, "addresses": []})
        self.assertEqual(n.node_info(), NodeInfo("h1.local", 8000, "gemma-2b-it Q4_0"))

    def test_node_info_is_the_old_named_tuple(self):
        self.assertEqual(NodeInfo._fields, ("host", "port", "info"))
        ni = NodeInfo("10.0.0.1", 8000, None)
        self.assertEqual(ni, ("10.0.0.1", 8000, None))
        self.assertIsNone(Node.from_json({**FULL, "info": None}).node_info().info)

    def test_dedup_keeps_first_seen_order(self):
        a, b = NodeInfo("1", 1, None), NodeInfo("2", 2, "x")
        self.assertEqual(dedup([a, b, a, b, a]), [a, b])


if __name__ == "__main__":
    unittest.main()
