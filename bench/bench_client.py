"""Client and bridge-edge figures: the client's round trips, /health under load, how fast a dead engine is told.

Starts a real engine and bridge on loopback (offline renderer), then prints median / min / max of:
  - EngineClient.health and AsyncEngineClient.health (4 concurrent) round trips;
  - GET /health through the bridge, idle and while 4 renders are in flight;
  - after kill -9 of the engine: GET /health -> 503 and POST /api/render -> 503 (engine known down);
  - a 12 MB upload over a 3 MB limit with urllib (no Expect: 100-continue) -> 413.
  python bench/bench_client.py [--n 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.client import AsyncEngineClient, EngineClient  # noqa: E402
from tests.service.conftest import BridgeProcess, EngineProcess  # noqa: E402

PHOTO = (ROOT / "tests" / "data" / "s1.jpg").read_bytes()


def show(label: str, ms: list[float]) -> None:
    print(f"{label:<58} median {statistics.median(ms):8.2f} ms  min {min(ms):8.2f}  max {max(ms):8.2f}  (n={len(ms)})")


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def multipart(image: bytes) -> tuple[bytes, str]:
    head = (b'--b\r\nContent-Disposition: form-data; name="source_image"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n")
    return head + image + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"


def upload_413(url: str) -> None:
    body, ctype = multipart(b"\xff\xd8\xff" + b"0" * 12_000_000)
    try:
        urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": ctype}, method="POST"), timeout=30)
    except urllib.error.HTTPError as err:
        assert err.code == 413, err.code
        return
    raise AssertionError("expected a 413")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        engine = EngineProcess(Path(tmp)).start()
        bridge = BridgeProcess(Path(tmp), engine.command_addr, env={"LP_MAX_UPLOAD_BYTES": "3000000"}).start()
        try:
            with EngineClient(engine.command_addr) as client:
                show("EngineClient.health round trip", timed(client.health, n))

            async def concurrent() -> list[float]:
                async with AsyncEngineClient(engine.command_addr, pool_size=4) as aclient:
                    async def one() -> float:
                        started = time.perf_counter()
                        await aclient.health()
                        return (time.perf_counter() - started) * 1000
                    out: list[float] = []
                    for _ in range(max(1, n // 4)):
                        out += await asyncio.gather(*(one() for _ in range(4)))
                    return out

            show("AsyncEngineClient.health, 4 concurrent", asyncio.run(concurrent()))
            http = httpx.Client(timeout=10)  # one client: httpx.get() would build an SSL context per call (~40 ms)
            show("GET /health via the bridge, idle", timed(lambda: http.get(bridge.url + "/health"), n))
            stop = threading.Event()

            def renders() -> None:
                i = 0
                with httpx.Client(timeout=60) as own:
                    while not stop.is_set():
                        i += 1
                        own.post(bridge.url + "/api/render", files={"source_image": ("a.jpg", PHOTO, "image/jpeg")},
                                 data={"intensity": f"{(i % 997) / 997:.4f}", "expression": "happy"})

            workers = [threading.Thread(target=renders) for _ in range(4)]
            for w in workers:
                w.start()
            show("GET /health via the bridge, 4 renders in flight", timed(lambda: http.get(bridge.url + "/health"), n))
            stop.set()
            for w in workers:
                w.join()
            url = bridge.url + "/api/render"
            show("413 for a 12 MB upload with urllib (3 MB limit)", timed(lambda: upload_413(url), 5))
            engine.stop("kill")
            time.sleep(1.5)  # one background probe interval: the engine is now known down
            show("engine killed: GET /health -> 503", timed(lambda: http.get(bridge.url + "/health"), 10))
            show("engine killed: POST /api/render -> 503", timed(
                lambda: http.post(bridge.url + "/api/render", files={"source_image": ("a.jpg", PHOTO, "image/jpeg")}),
                10))
        finally:
            bridge.stop()
            engine.stop()


if __name__ == "__main__":
    main()
