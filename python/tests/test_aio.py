"""lmdisc.aio: async with announce(), await discover(), async for ... in watch(),
with the fake agent and the fake binary; the event loop is never blocked."""

import asyncio
import os
import time
import unittest

import lmdisc
from lmdisc import LmdiscUnavailable, NodeInfo, aio

from .fakeagent import FakeAgent, node
from .fakebin import FakeBin
from .test_watch import ev, snap
from .util import Case


class AioCase(Case, unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        super().setUp()
        self.agent = FakeAgent(self.tmp).start()
        self.addCleanup(self.agent.stop)
        self.addCleanup(lmdisc.mdns._withdraw_all)
        os.environ["LMDISC_SOCKET"] = self.agent.path

    async def ticking(self, coro):
        """Run coro while a ticker counts how often the loop let it run: (result, ticks)."""
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        try:
            return await coro, ticks
        finally:
            stop.set()
            await t


class AnnounceTest(AioCase):
    async def test_async_with_announces_and_withdraws(self):
        async with aio.announce(8000, info="gemma-2b-it Q4_0", txt={"model": "gemma"}) as a:
            self.assertTrue(await a.wait_established(5))
            self.assertEqual((a.state, a.mode, a.name), ("established", "agent", lmdisc.default_name(8000)))
            (put,) = self.agent.find("PUT")
            self.assertEqual(put.body, {"port": 8000, "info": "gemma-2b-it Q4_0", "txt": {"model": "gemma"}})
            self.assertEqual(await a.set_txt(load=3), {"model": "gemma", "load": "3"})
            stream = self.agent.registrations[0]
        self.assertTrue(await asyncio.to_thread(stream.closed.wait, 5), "not withdrawn at the end of the block")
        self.assertEqual(stream.closed_by, "client")
        self.assertEqual(a.state, "withdrawn")

    async def test_await_announce_self_with_the_seed_name(self):
        a = await aio.announce_self(8000, info="x", name="box")
        self.assertIsInstance(a.announcement, lmdisc.Announcement)
        self.assertIs(a.announcement, lmdisc.announce_self(8000, info="x", name="box"))
        self.assertTrue(await a.wait_established(5))
        await a.withdraw()
        self.assertFalse(a.active)

    async def test_waiting_for_a_state_does_not_block_the_loop_and_times_out(self):
        self.agent.auto_establish = False
        a = await aio.announce(8000, name="box")
        got, ticks = await self.ticking(a.wait_established(0.3))
        self.assertFalse(got)
        self.assertGreater(ticks, 5, "the loop was blocked while waiting")
        self.agent.registrations[0].send({"state": "established", "name": "box"})
        self.assertTrue(await a.wait_established(5))

    async def test_a_wait_can_be_cancelled(self):
        self.agent.auto_establish = False
        a = await aio.announce(8000, name="box")
        task = asyncio.create_task(a.wait_established())
        await asyncio.sleep(0.05)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertEqual(a.announcement._listeners, [], "a cancelled wait left its listener")

    async def test_errors_are_raised_by_the_await(self):
        self.agent.reject["taken"] = (409, 'the name "taken" is registered by another connection')
        with self.assertRaises(lmdisc.AgentError) as cm:
            async with aio.announce(8000, name="taken"):
                pass
        self.assertEqual(cm.exception.status, 409)

    async def test_the_agent_going_away_is_followed(self):
        fake = FakeBin(self.tmp)
        os.environ["PATH"] = fake.bindir
        async with aio.announce(8000, name="box") as a:
            self.assertTrue(await a.wait_established(5))
            self.agent.stop()
            self.assertTrue(await a.wait_state("registering", timeout=5))
            self.assertTrue(await a.wait_established(5))
            self.assertEqual(a.mode, "process")
            self.kill_later(fake.starts("announce")[0]["pid"])


class DiscoverTest(AioCase):
    async def test_discover_and_discover_nodes(self):
        self.agent.services_incomplete = 3  # the agent is settling: asked again every 0.1 s
        nodes, ticks = await self.ticking(aio.discover(timeout=5))
        self.assertEqual([n.name for n in nodes], ["h1:8000", "h3:9000"])
        self.assertGreater(ticks, 5, "the loop was blocked during discover()")
        self.assertEqual(await aio.discover_nodes(),
                         [NodeInfo("10.77.0.1", 8000, "gemma-2b-it Q4_0"), NodeInfo("fd77::3", 9000, None)])

    async def test_list_alive_and_nodes(self):
        self.assertEqual(await aio.list_alive(), [NodeInfo("10.77.0.1", 8000, "gemma-2b-it Q4_0"),
                                                  NodeInfo("10.77.0.2", 8000, "llama-3 8B")])
        self.assertEqual([n.name for n in await aio.nodes()], ["h1:8000", "h2:8000"])

    async def test_drain(self):
        self.assertEqual(await aio.drain(grace=5), {"state": "draining", "grace": 5})


class WatchTest(AioCase):
    async def test_async_for_gets_the_snapshot_and_the_events(self):
        a, b, c = node("a:1"), node("b:1"), node("c:1")
        self.agent.event_script = [{"lines": [snap(5, [a, b]), ev(6, "join", c), ev(7, "leave", a, reason="goodbye")],
                                    "then": "hold"}]
        got = []
        async with aio.watch() as events:
            async for e in events:
                got.append((e.kind, e.node.name, e.reason))
                if len(got) == 4:
                    break
            self.assertEqual(sorted(events.peers), ["b:1", "c:1"])
            self.assertEqual((events.index, events.epoch), (7, "e1"))
        self.assertEqual(got, [("join", "a:1", "snapshot"), ("join", "b:1", "snapshot"), ("join", "c:1", None),
                               ("leave", "a:1", "goodbye")])
        self.assertTrue(await asyncio.to_thread(self.agent.event_streams[0].closed.wait, 5))

    async def test_aclose_from_another_task_ends_the_iteration(self):
        events = aio.watch(snapshot=False)
        got = []

        async def consume():
            async for e in events:
                got.append(e)

        task = asyncio.create_task(consume())
        self.assertTrue(await asyncio.to_thread(self.agent.wait_for, lambda: self.agent.event_streams, 5))
        t0 = time.monotonic()
        await events.aclose()
        await asyncio.wait_for(task, 5)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(got, [])
        with self.assertRaises(StopAsyncIteration):
            await events.__anext__()

    async def test_without_an_agent_the_first_anext_raises(self):
        os.environ["LMDISC_SOCKET"] = os.path.join(self.tmp, "none.sock")
        with self.assertRaises(LmdiscUnavailable):
            async for _ in aio.watch():
                pass


if __name__ == "__main__":
    unittest.main()
