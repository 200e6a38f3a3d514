"""engine.client.AsyncEngineClient: the pool, its bounded wait, cancellation, frames as an async iterator."""

from __future__ import annotations

import asyncio
import time

import msgpack
import pytest
import zmq

from engine.client import (
    AsyncEngineClient,
    AsyncFrameSubscriber,
    BadReply,
    EngineReplyError,
    EngineUnavailable,
    Overloaded,
)
from engine.codec import decode_jpeg
from tests.service.conftest import EngineProcess


def test_async_helpers_and_frames(engine: EngineProcess, portrait: bytes) -> None:
    async def main() -> None:
        async with AsyncEngineClient(engine.command_addr, pool_size=2) as client:
            replies = await asyncio.gather(client.health(), client.expressions(), client.set_source(portrait))
            health, expressions, source = replies
            assert health.ready and "happy" in expressions.expressions and source.avatar
            frame = await client.render(avatar=source.avatar, expression="happy", intensity=0.7)
            assert decode_jpeg(frame.jpeg).ndim == 3
            with pytest.raises(EngineReplyError) as err:
                await client.call("stream", avatar=source.avatar, fps=-1)
            assert err.value.code == "bad_request"
            sub = client.subscribe(engine.frame_addr, source.avatar)
            await client.stream(source.avatar, fps=20)  # a stream: joining late only skips its first frames
            try:
                seqs = []
                async for f in sub:
                    seqs.append(f.seq)
                    if len(seqs) == 3:
                        break
            finally:
                await client.stream(source.avatar, fps=0)
                await sub.aclose()
            assert seqs == sorted(seqs) and len(set(seqs)) == 3
            offset = await client.clock_offset(3)
            assert abs(offset.offset) <= offset.rtt / 2 + 0.002

    asyncio.run(main())


def test_recv_latest_skips_queued_frames_and_reports_a_malformed_one() -> None:
    """A real PUB on loopback: what queued while the reader was away is dropped, the newest comes back."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")

    def publish(seq: int, header: bytes | None = None) -> None:
        pub.send_multipart([b"frame.a", header or msgpack.packb({"seq": seq, "ts": 1.0}), b"\xff\xd8jpeg"])

    async def main() -> None:
        async with AsyncFrameSubscriber(f"tcp://127.0.0.1:{port}", "a", hwm=100) as sub:
            for _ in range(200):  # the slow joiner: publish until the subscription is in place
                publish(0)
                if await sub.recv_latest(50) is not None:
                    break
            await asyncio.sleep(0.2)
            while await sub.recv_latest(50) is not None:  # drop the probes still queued
                pass
            for seq in range(1, 6):
                publish(seq)
            await asyncio.sleep(0.3)
            frame = await sub.recv_latest(2000)
            assert frame is not None and frame.seq == 5 and frame.avatar == "a"
            publish(6, header=b"\xc1 not msgpack")
            with pytest.raises(BadReply):
                await sub.recv_latest(2000)

    try:
        asyncio.run(main())
    finally:
        pub.close(0)
        ctx.term()


def test_pool_wait_is_bounded_by_count_and_deadline(peer_factory) -> None:
    peer = peer_factory(silent=True)

    async def main() -> list[object]:
        client = AsyncEngineClient(peer.addr, timeout_ms=3000, retries=0, pool_size=1, max_waiting=1, wait_ms=1000)
        try:
            first = asyncio.create_task(client.call("render"))
            await asyncio.sleep(0.05)  # first holds the only socket
            second = asyncio.create_task(client.call("render"))
            await asyncio.sleep(0.05)  # second waits (max_waiting=1)
            started = time.monotonic()
            third = await asyncio.gather(client.call("health"), return_exceptions=True)
            assert time.monotonic() - started < 0.5  # refused at once, not after the 1 s wait
            return [*(await asyncio.gather(first, second, return_exceptions=True)), *third]
        finally:
            await client.aclose()

    first, second, third = asyncio.run(main())
    assert isinstance(first, EngineUnavailable)
    assert isinstance(second, Overloaded) and "1000 ms" in str(second)
    assert isinstance(third, Overloaded)


def test_cancelled_request_frees_its_slot_and_aclose_does_not_hang(peer_factory) -> None:
    silent = peer_factory(silent=True)

    async def main() -> None:
        client = AsyncEngineClient(silent.addr, timeout_ms=5000, pool_size=1)
        task = asyncio.create_task(client.call("health"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other = asyncio.create_task(client.call("health"))  # the slot is back; this one is in flight at close
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await asyncio.wait_for(client.aclose(), 4)  # a blocking ctx.term() would hang on the in-flight socket
        assert time.monotonic() - started < 4.0
        with pytest.raises(EngineUnavailable):
            await other

    asyncio.run(main())
