"""watch(): snapshot, events, resuming with since/epoch, 429 backoff, reset, stopping."""

import os
import threading
import unittest

import lmdisc
from lmdisc import LmdiscUnavailable

from .fakeagent import node
from .test_agent import AgentCase


def ev(index, kind, peer, epoch="e1", changes=(), reason=None):
    d = {"index": index, "epoch": epoch, "type": kind, "time": 1795472700.0 + index, "peer": peer,
         "changes": list(changes)}
    if reason:
        d["reason"] = reason
    return d


def snap(index, peers, epoch="e1", reset=False):
    return {"type": "snapshot", "index": index, "epoch": epoch, "reset": reset, "peers": peers}


class WatchTest(AgentCase):
    def take(self, stream, n):
        """The next n events; the fake agent's script makes them arrive within the test's timeout."""
        out = []
        timer = threading.Timer(10, stream.close)  # a stuck test ends instead of hanging
        timer.start()
        try:
            for e in stream:
                out.append(e)
                if len(out) == n:
                    break
        finally:
            timer.cancel()
        self.assertEqual(len(out), n, f"got only {out}")
        return out

    def test_snapshot_then_events_then_resume_after_a_dropped_stream(self):
        a, b, c = node("a:1"), node("b:1"), node("c:1")
        c2 = dict(c, txt={"model": "llama"})
        self.agent.event_script = [
            {"lines": [snap(5, [a, b]), ev(6, "join", c)], "then": "drop"},
            {"lines": [ev(7, "update", c2, changes=["txt"]), ev(8, "leave", a, reason="goodbye")], "then": "hold"},
        ]
        with lmdisc.watch() as stream:
            got = self.take(stream, 5)
            self.assertEqual([(e.kind, e.node.name, e.reason) for e in got],
                             [("join", "a:1", "snapshot"), ("join", "b:1", "snapshot"), ("join", "c:1", None),
                              ("update", "c:1", None), ("leave", "a:1", "goodbye")])
            self.assertEqual(got[3].changes, ("txt",))
            self.assertEqual(got[3].node.txt, {"model": "llama"})
            self.assertEqual((got[4].index, got[4].epoch), (8, "e1"))
            self.assertEqual(sorted(stream.peers), ["b:1", "c:1"])
        reqs = self.agent.find("GET", "/v1/events")
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[0].query, {})
        self.assertEqual(reqs[1].query, {"since": "6", "epoch": "e1"})
        self.assertEqual(reqs[1].headers.get("accept"), "application/x-ndjson")

    def test_retries_after_429(self):
        self.agent.event_script = [{"status": 429}, {"status": 429},
                                   {"lines": [snap(1, [node("a:1")])], "then": "hold"}]
        with lmdisc.watch() as stream:
            (e,) = self.take(stream, 1)
        self.assertEqual((e.kind, e.node.name), ("join", "a:1"))
        self.assertEqual(len(self.agent.find("GET", "/v1/events")), 3)

    def test_a_reset_snapshot_is_reconciled_with_what_was_known(self):
        a, b, c = node("a:1"), node("b:1"), node("c:1")
        b2 = dict(b, port=2, addresses=[], sources=["mdns", "dns"])
        self.agent.event_script = [
            {"lines": [snap(3, [a, b])], "then": "drop"},
            {"lines": [snap(1, [b2, c], epoch="e2", reset=True), ev(2, "join", node("d:1"), epoch="e2")],
             "then": "hold"},
        ]
        with lmdisc.watch(snapshot=False) as stream:
            got = self.take(stream, 4)
        self.assertEqual([(e.kind, e.node.name, e.reason) for e in got],
                         [("leave", "a:1", "reset"), ("update", "b:1", "reset"), ("join", "c:1", "reset"),
                          ("join", "d:1", None)])
        self.assertEqual(got[1].changes, ("port", "addresses", "sources"))
        self.assertEqual(self.agent.find("GET", "/v1/events")[1].query, {"since": "3", "epoch": "e1"})

    def test_since_resumes_from_an_index(self):
        self.agent.event_script = [{"lines": [ev(11, "join", node("a:1"))], "then": "hold"}]
        with lmdisc.watch(since=10, epoch="e1") as stream:
            (e,) = self.take(stream, 1)
        self.assertEqual((e.kind, e.index), ("join", 11))
        self.assertEqual(self.agent.find("GET", "/v1/events")[0].query, {"since": "10", "epoch": "e1"})

    def test_breaking_out_of_the_loop_closes_the_stream(self):
        for e in lmdisc.watch():
            break
        self.assertEqual(e.kind, "join")
        self.assertTrue(self.agent.wait_for(lambda: self.agent.event_streams[0].closed.is_set()),
                        "the event stream was left open")
        self.assertEqual(self.agent.event_streams[0].closed_by, "client")

    def test_close_from_another_thread_ends_a_blocked_iteration(self):
        stream = lmdisc.watch(snapshot=False)
        done = threading.Event()
        result = []

        def consume():
            result.extend(stream)
            done.set()

        t = threading.Thread(target=consume, daemon=True)
        t.start()
        self.assertTrue(self.agent.wait_for(lambda: len(self.agent.event_streams) == 1))
        stream.close()
        self.assertTrue(done.wait(5), "iteration did not stop")
        self.assertEqual(result, [])
        self.assertTrue(self.agent.event_streams[0].closed.wait(5))

    def test_without_an_agent_watch_says_what_to_start(self):
        os.environ["LMDISC_SOCKET"] = os.path.join(self.tmp, "none.sock")
        with self.assertRaises(LmdiscUnavailable) as cm:
            lmdisc.watch()
        self.assertIn("systemctl start lmdisc", str(cm.exception))

    def test_bad_since_is_refused(self):
        with self.assertRaises(ValueError):
            lmdisc.watch(since=-1)


if __name__ == "__main__":
    unittest.main()
