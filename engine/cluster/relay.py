"""The frame relay: an XSUB connected to every replica's PUB, an XPUB bound on the cluster's frame address, on a
thread of its own, so a burst of frames never delays a command (and a burst of commands never delays a frame).

It is ``zmq.proxy`` plus what a proxy cannot do: follow the replicas. Connects and disconnects are posted to its
Mailbox (its sockets belong to its thread); frames and subscriptions are passed on as they come, dropped for a full
subscriber (PUB semantics).
"""

from __future__ import annotations

import contextlib
import logging
import threading

import zmq

from engine.workers import Mailbox

log = logging.getLogger(__name__)

POLL_MS = 250


class FrameRelay:
    def __init__(self, ctx: zmq.Context, frame_addr: str) -> None:
        self.frame_addr = frame_addr
        self._xsub, self._xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
        for sock in (self._xsub, self._xpub):
            sock.setsockopt(zmq.LINGER, 0)
        self._mailbox = Mailbox()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-frame-relay", daemon=True)

    def start(self) -> None:
        """Bind (errors surface here), then relay on the relay's thread."""
        try:
            self._xpub.bind(self.frame_addr)
        except zmq.ZMQError:
            self._close()
            raise
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def follow(self, frame_addr: str) -> None:
        self._mailbox.post(lambda: self._xsub.connect(frame_addr))

    def unfollow(self, frame_addr: str) -> None:
        def disconnect() -> None:
            with contextlib.suppress(zmq.ZMQError):  # never connected, or gone already
                self._xsub.disconnect(frame_addr)

        self._mailbox.post(disconnect)

    def stop(self) -> None:
        self._stopping.set()
        self._mailbox.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        else:
            self._close()

    def _run(self) -> None:
        poller = zmq.Poller()
        for sock in (self._xsub, self._xpub):
            poller.register(sock, zmq.POLLIN)
        poller.register(self._mailbox.fileno(), zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(POLL_MS))
                self._mailbox.run_pending()
                if self._xsub in events:
                    self._pass(self._xsub, self._xpub)
                if self._xpub in events:
                    self._pass(self._xpub, self._xsub)
        except Exception:
            log.exception("the frame relay stopped")
            raise
        finally:
            self._close()

    @staticmethod
    def _pass(src: zmq.Socket, dst: zmq.Socket) -> None:
        """Everything waiting on ``src``, on to ``dst``."""
        for _ in range(1000):  # a bound per wake-up, so the mailbox is served too
            try:
                message = src.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            with contextlib.suppress(zmq.ZMQError):  # a full subscriber: PUB semantics, drop
                dst.send_multipart(message, zmq.NOBLOCK)

    def _close(self) -> None:
        self._xsub.close(0)
        self._xpub.close(0)
        self._mailbox.close()
