"""Fake replicas for the router's fault tests: a ROUTER on loopback, served by a thread, each kind answering in its
own wrong (or slow) way through ``answer``."""

from __future__ import annotations

import threading

import msgpack
import zmq

from tests.service.conftest import free_port


class FakeReplica:
    """A ROUTER on a free loopback port; ``answer(body)`` gives the reply bytes for each request (None: none)."""

    def __init__(self) -> None:
        self.addr = f"tcp://127.0.0.1:{free_port()}"
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.addr)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def answer(self, body: bytes) -> bytes | None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.sock.poll(100):
                continue
            *envelope, body = self.sock.recv_multipart()
            reply = self.answer(body)
            if reply is not None:
                self.sock.send_multipart([*envelope, reply])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close(0)
        self.ctx.term()


class SilentReplica(FakeReplica):
    """Reads requests and never answers: a wedged engine."""

    def __init__(self) -> None:
        self.received = 0
        super().__init__()

    def answer(self, body: bytes) -> bytes | None:
        self.received += 1
        return None


class FlakyReplica(FakeReplica):
    """Answers every command ok, except the first ``set_expression``: an error reply."""

    def __init__(self) -> None:
        self.received: list[str] = []
        super().__init__()

    def answer(self, body: bytes) -> bytes | None:
        cmd = msgpack.unpackb(body, raw=False)["cmd"]
        self.received.append(cmd)
        failing = cmd == "set_expression" and self.received.count(cmd) == 1
        return msgpack.packb({"ok": False, "error": {"code": "busy", "message": "try again"}} if failing
                             else {"ok": True})


class BadReplica(FakeReplica):
    """Accepts uploads and answers everything else with what no engine sends: a ``stream`` reply whose rate is
    text, and for anything else bytes that are not msgpack."""

    def answer(self, body: bytes) -> bytes | None:
        cmd = msgpack.unpackb(body, raw=False).get("cmd")
        replies = {"set_source": msgpack.packb({"ok": True, "avatar": "x"}),
                   "stream": msgpack.packb({"ok": True, "fps": "fast"})}
        return replies.get(cmd, b"\xc1\x00")
