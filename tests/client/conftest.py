"""The client's tests run against a real engine process (the service fixtures), plus tiny ZMQ peers for the
failure modes a real engine does not produce on demand (a silent peer, a CURVE server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import msgpack
import pytest
import zmq

from tests.service.conftest import engine, free_port, portrait  # noqa: F401  (fixtures shared with the service tests)


class Peer:
    """A REP peer on loopback that answers ``{"ok": true, "echo": cmd}`` after ignoring ``drop_first`` requests.

    A ROUTER underneath so it can stay silent (a REP socket must answer before it reads again).
    """

    def __init__(self, drop_first: int = 0, silent: bool = False, curve_secret: bytes | None = None) -> None:
        self.addr = f"tcp://127.0.0.1:{free_port()}"
        self.drop_first, self.silent, self.seen = drop_first, silent, 0
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if curve_secret is not None:
            self._sock.curve_server = True
            self._sock.curve_secretkey = curve_secret
        self._sock.bind(self.addr)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(50):
                continue
            ident, empty, body = self._sock.recv_multipart()
            self.seen += 1
            if self.silent or self.seen <= self.drop_first:
                continue
            request = msgpack.unpackb(body)
            reply = {"ok": True, "renderer": "peer", "echo": request.get("cmd"), "now": 1.0}
            self._sock.send_multipart([ident, empty, msgpack.packb(reply)])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close(0)
        self._ctx.term()


@pytest.fixture
def peer_factory() -> Iterator:
    peers: list[Peer] = []

    def make(**kwargs: object) -> Peer:
        peers.append(Peer(**kwargs))  # type: ignore[arg-type]
        return peers[-1]

    yield make
    for p in peers:
        p.close()
