"""The old README's "Typical usage" snippet runs unchanged, with an agent and
without one: with its imports changed from lmserv.discovery to lmdisc, and
verbatim through the migration shim python/examples/lmserv/."""

import os
import textwrap
import unittest

from .fakeagent import FakeAgent, node
from .fakebin import FakeBin
from .util import PYDIR, Case

VERBATIM = textwrap.dedent('''
    # server.py (snippet)

    from lmserv.discovery import announce_self
    from lmserv.discovery.registry import REGISTRY

    # 1. Start your FastAPI server on PORT
    PORT = 8000
    ...

    # 2. Broadcast yourself once the port is bound
    announce_self(PORT, info="gemma-2b-it Q4_0")

    # 3. Anywhere in your app: ask who else is alive
    for node in REGISTRY.list_alive():
        print(f"Found peer @ http://{node.host}:{node.port}  ({node.info})")
''')
# with its imports changed to lmdisc (the README's first way)
SNIPPET = VERBATIM.replace("lmserv.discovery", "lmdisc")
# verbatim, through the migration shim python/examples/lmserv/ (the README's second way)
SHIM = os.path.join(PYDIR, "examples")

EXPECTED = ["Found peer @ http://10.77.0.1:8000  (gemma-2b-it Q4_0)",
            "Found peer @ http://10.77.0.2:8000  (llama-3 8B)"]


class TypicalUsageTest(Case):
    def run_snippet(self, env, code=SNIPPET):
        proc = self.spawn_python(code, env)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err.decode())
        return out.decode().splitlines()

    def test_with_an_agent(self):
        agent = FakeAgent(self.tmp).start()
        self.addCleanup(agent.stop)
        self.assertEqual(self.run_snippet(self.child_env(LMDISC_SOCKET=agent.path)), EXPECTED)
        (put,) = agent.find("PUT")
        self.assertEqual(put.body, {"port": 8000, "info": "gemma-2b-it Q4_0", "txt": {}})
        self.assertTrue(agent.wait_for(lambda: agent.registrations[0].closed.is_set()),
                        "the announcement outlived the script")

    def test_without_an_agent(self):
        fake = FakeBin(self.tmp)
        fake.set_discover({"complete": True, "nodes": [node("h1:8000"),
                                                       node("h2:8000", info="llama-3 8B", v4="10.77.0.2")]})
        self.assertEqual(self.run_snippet(self.child_env(PATH=fake.bindir)), EXPECTED)
        (ann,) = fake.starts("announce")
        self.assertEqual(ann["argv"], ["announce", "8000", "gemma-2b-it Q4_0", "--ttl", "30"])
        self.assertTrue(fake.terminated(ann["pid"]), "the announce child outlived the script")

    def test_verbatim_through_the_shim_with_and_without_an_agent(self):
        self.assertIn("from lmserv.discovery import announce_self", VERBATIM)
        agent = FakeAgent(self.tmp).start()
        self.addCleanup(agent.stop)
        env = self.child_env(LMDISC_SOCKET=agent.path, PYTHONPATH=SHIM + os.pathsep + PYDIR)
        self.assertEqual(self.run_snippet(env, VERBATIM), EXPECTED)
        (put,) = agent.find("PUT")
        self.assertEqual(put.body, {"port": 8000, "info": "gemma-2b-it Q4_0", "txt": {}})
        agent.stop()
        fake = FakeBin(self.tmp)
        fake.set_discover({"complete": True, "nodes": [node("h1:8000"),
                                                       node("h2:8000", info="llama-3 8B", v4="10.77.0.2")]})
        env = self.child_env(PATH=fake.bindir, PYTHONPATH=SHIM + os.pathsep + PYDIR)
        self.assertEqual(self.run_snippet(env, VERBATIM), EXPECTED)
        self.assertEqual(len(fake.starts("announce")), 1)

    def test_the_shim_modules_are_lmdiscs(self):
        code = ("import lmserv.discovery as d, lmserv.discovery.registry as r, lmserv.discovery.mdns as m, lmdisc\n"
                "r._DEFAULT_TTL_S = 5\n"
                "print(r is lmdisc.registry, m is lmdisc.mdns, d.REGISTRY is lmdisc.REGISTRY,"
                " d.NodeInfo is lmdisc.NodeInfo, lmdisc.registry._DEFAULT_TTL_S)\n")
        self.assertEqual(self.run_snippet(self.child_env(PYTHONPATH=SHIM + os.pathsep + PYDIR), code),
                         ["True True True True 5"])


if __name__ == "__main__":
    unittest.main()
