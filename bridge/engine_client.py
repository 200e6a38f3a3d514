"""The bridge's link to the engine: policy only (the protocol lives in engine/client/).

Three pools of the one client: renders and other short work share ``concurrency`` sockets, talking clips
(``/api/speak``, seconds to minutes each) have their own ``clip_concurrency``, and the health probe has its own, so
``/api/render`` never waits behind clips and ``/health`` never waits behind either. A background probe keeps
``down`` current: once the engine is known to be down, a render is refused within the probe timeout (503) instead
of waiting ``timeout_ms`` x tries, and requests already in flight are released as soon as the probe sees the
engine gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from bridge.config import BridgeSettings
from engine.client import AsyncEngineClient, EngineClientError, EngineUnavailable, HealthReply, Overloaded
from engine.security import client_keys

log = logging.getLogger(__name__)
T = TypeVar("T")
PROBE_POOL = 4  # /health callers and the background probe; each waits at most the probe timeout


class EngineLink:
    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        curve = client_keys(settings.curve_server_key, settings.curve_server_key_file,
                            settings.curve_client_secret_key, settings.curve_client_secret_file)
        self.work = AsyncEngineClient(settings.engine_addr, settings.timeout_ms, settings.retries,
                                      pool_size=settings.concurrency, max_waiting=settings.queue,
                                      wait_ms=settings.timeout_ms * (1 + settings.retries), curve=curve)
        self.clips = AsyncEngineClient(settings.engine_addr, settings.timeout_ms, retries=0,
                                       pool_size=settings.clip_concurrency, max_waiting=settings.queue, curve=curve)
        self.probes = AsyncEngineClient(settings.engine_addr, settings.health_timeout_ms, retries=0,
                                        pool_size=PROBE_POOL, max_waiting=64, wait_ms=settings.health_timeout_ms,
                                        curve=curve)
        self.last_health: HealthReply | None = None
        self.down_since: float | None = None
        self._down = asyncio.Event()
        self._closing = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.probe_interval_ms > 0:
            self._watcher = asyncio.create_task(self._watch(), name="engine-probe")

    async def probe(self) -> HealthReply | None:
        """One health round trip on the probe pool (its own sockets): None when the engine does not answer.

        Only a missed reply marks the engine down; a flood of probes that finds the pool full does not.
        """
        try:
            reply = await self.probes.health()
        except Overloaded:
            return None
        except EngineClientError:
            self._mark_down()
            return None
        self._mark_up(reply)
        return reply

    def _mark_down(self) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("engine at %s is not answering", self.settings.engine_addr)
        self._down.set()

    def _mark_up(self, reply: HealthReply | None = None) -> None:
        if self.down_since is not None:
            log.info("engine at %s answers again", self.settings.engine_addr)
        self.down_since = None
        self._down.clear()
        if reply is not None:
            self.last_health = reply

    async def _watch(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.settings.probe_interval_ms / 1000)

    def begin_shutdown(self) -> None:
        """SIGTERM: requests in flight and new ones are answered 503 now instead of holding the exit up."""
        self._closing.set()

    @property
    def closing(self) -> bool:
        """True once a shutdown began: long-lived streams (the /preview page's) end so they do not hold it up."""
        return self._closing.is_set()

    async def run(self, work: Awaitable[T]) -> T:
        """Await engine work unless the engine is (or becomes) known to be down: then EngineUnavailable at once."""
        if self._closing.is_set() or (self.down_since is not None and await self.probe() is None):
            if asyncio.iscoroutine(work):
                work.close()
            if self._closing.is_set():
                raise EngineUnavailable("the bridge is shutting down")
            raise EngineUnavailable(f"the engine at {self.settings.engine_addr} is down "
                                    f"(no answer for {time.monotonic() - (self.down_since or 0):.1f} s)")
        task = asyncio.ensure_future(work)
        down = asyncio.ensure_future(self._down.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({task, down, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
            closing.cancel()
            if not task.done():  # the engine went down meanwhile, or we were cancelled (shutdown)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, EngineClientError):
                    await task
        if task.cancelled():
            if self._closing.is_set():
                raise EngineUnavailable("the bridge is shutting down")
            raise EngineUnavailable(f"the engine at {self.settings.engine_addr} stopped answering")
        try:
            result = task.result()
        except EngineUnavailable:
            self._mark_down()
            raise
        except EngineClientError:  # the engine answered (with an error): it is up
            self._mark_up()
            raise
        self._mark_up()
        return result

    async def aclose(self) -> None:
        """Stop the probe, then close the pools; the contexts are terminated off the event loop."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.work.aclose()
        await self.clips.aclose()
        await self.probes.aclose()
