"""The engine process's sockets and its command loop; nothing else. Threads: engine/workers.py; commands:
engine/handlers.py; frames: engine/frames.py; state and start-up: engine/core.py.

The command socket is a ROUTER that speaks REP's envelope, so REQ clients see a REP socket, but a slow request
(``set_source``, ``render``) does not hold up the others: quick commands are answered at once, slow ones are
answered by their continuation, which the Mailbox runs on this same thread. The PUB frame socket is bound here and
used by the publish thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import zmq

from engine import handlers
from engine import protocol as p
from engine.config import Settings
from engine.core import Core
from engine.errors import BadRequest
from engine.handlers import Reply
from engine.security import CurveKeys, curve_server, start_authenticator

log = logging.getLogger(__name__)

FRAME_HWM = 4  # frames a slow subscriber may have queued before PUB drops for it
POLL_MS = 500


class Engine:
    """Commands in, frames out. ``run()`` blocks the calling thread (the command thread) until ``stop()``."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic,
                 curve: CurveKeys | None = None) -> None:
        self.settings = settings
        self._curve = curve
        self._stopping = threading.Event()
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._pub = self._ctx.socket(zmq.PUB)
        self.core = Core(settings, self._pub, clock)
        for sock in (self._router, self._pub):
            sock.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, FRAME_HWM)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self._max_message = settings.max_image_bytes + 64 * 1024
        self._auth = None
        if curve is not None:  # both sockets encrypted; the ZAP handler admits the listed clients only
            self._auth = start_authenticator(self._ctx, settings.curve_keys_dir)
            for sock in (self._router, self._pub):
                curve_server(sock, curve)

    def start(self) -> None:
        """Bind both sockets (errors surface here), then start the threads and the model loading."""
        try:
            self._router.bind(self.settings.command_addr)
            self._pub.bind(self.settings.frame_addr)
        except zmq.ZMQError:
            self._close_sockets()
            self.core.mailbox.close()
            raise
        log.info("commands on %s, frames on %s%s", self.settings.command_addr, self.settings.frame_addr,
                 " (CURVE)" if self._curve is not None else "")
        self.core.start()

    def run(self, on_bound: Callable[[str, str], None] | None = None) -> None:
        """Serve until ``stop()``; ``on_bound`` hears the bound addresses first (a ``:*`` port resolved)."""
        self.start()
        if on_bound is not None:
            on_bound(*self.endpoints())
        mailbox = self.core.mailbox
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(mailbox.fileno(), zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(POLL_MS))
                mailbox.run_pending()
                if self._router in events:
                    self._serve_one()
        finally:
            self.close()

    def endpoints(self) -> tuple[str, str]:
        """The command and frame addresses as bound (after ``start``): the port the OS chose for ``tcp://host:*``."""
        return (self._router.getsockopt_string(zmq.LAST_ENDPOINT), self._pub.getsockopt_string(zmq.LAST_ENDPOINT))

    def stop(self) -> None:
        """Ask ``run`` to return (safe from a signal handler or another thread)."""
        self._stopping.set()
        self.core.mailbox.wake()

    def close(self) -> None:
        """Intake is already stopped (the loop has returned); drain the workers in order, then close the sockets."""
        self.core.stop()
        self.core.mailbox.run_pending()  # answers of the jobs that finished while draining
        self._close_sockets()
        self.core.mailbox.close()
        log.info("engine stopped")

    def _close_sockets(self) -> None:
        self._router.close(0)
        self._pub.close(0)
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()

    def _serve_one(self) -> None:
        try:
            frames = self._router.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        envelope, body = p.split_envelope(frames)

        def respond(reply: Reply) -> None:
            self._send(envelope, reply)

        try:
            if len(body) != 1:
                raise BadRequest(f"a request is one msgpack frame, not {len(body)} frames")
            request = p.parse_request(body[0], self._max_message, self.settings.max_fps)
            reply = handlers.handle(self.core, request, respond)
        except Exception as exc:  # a bug must cost one reply, never the process
            reply = handlers.error_reply(self.core, exc)
        if reply is not None:
            respond(reply)

    def _send(self, envelope: list[bytes], reply: Reply) -> None:
        """Command thread only: the ROUTER socket is not thread-safe."""
        try:
            self._router.send_multipart([*envelope, p.pack(reply)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client went away: nothing to answer
            log.debug("reply dropped: %s", exc)
