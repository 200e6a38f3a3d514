"""The HTTP contract, byte for byte, on a real uvicorn server in front of a real engine."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from engine.codec import decode_jpeg
from tests.service.conftest import DATA, BridgeProcess, EngineProcess


def post_render(bridge: BridgeProcess, image: bytes | None, content_type: str = "image/jpeg",
                **fields: str) -> httpx.Response:
    files = {"source_image": ("photo", image, content_type)} if image is not None else None
    return httpx.post(bridge.url + "/api/render", files=files, data=fields, timeout=60)


def test_health_is_exactly_the_seed_contract(bridge: BridgeProcess) -> None:
    response = httpx.get(bridge.url + "/health")
    assert response.status_code == 200
    assert response.content == b'{"status": "ok"}'
    assert response.headers["content-type"] == "application/json"


def test_expressions_is_exactly_the_seed_contract(bridge: BridgeProcess) -> None:
    response = httpx.get(bridge.url + "/expressions")
    assert response.status_code == 200
    assert response.content == (b'{"expressions": ["neutral", "happy", "sad", "surprised"], '
                                b'"intensities": {"min": 0.0, "max": 1.0}}')


@pytest.mark.parametrize("name", ["astronaut.jpg", "Tom_Hanks_54745.png"])
def test_render_returns_a_jpeg_of_the_photo(bridge: BridgeProcess, name: str) -> None:
    image = (DATA / name).read_bytes()
    response = post_render(bridge, image, expression="happy", intensity="0.8")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-renderer"] == "offline"
    frame = decode_jpeg(response.content)
    width, height = Image.open(io.BytesIO(image)).size
    scale = min(1.0, 1280 / max(width, height))
    assert abs(frame.shape[1] - width * scale) <= 2 and abs(frame.shape[0] - height * scale) <= 2


def test_render_defaults_and_cache_hit(bridge: BridgeProcess, portrait: bytes) -> None:
    first = post_render(bridge, portrait, expression="sad")  # intensity defaults to 1.0
    second = post_render(bridge, portrait, expression="sad", intensity="1.0")
    assert first.status_code == second.status_code == 200
    assert second.headers["x-cache"] == "hit" and second.content == first.content


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def test_client_errors_are_json_with_the_right_status(bridge: BridgeProcess, portrait: bytes) -> None:
    cases = [
        (post_render(bridge, None, expression="happy"), 400),
        (post_render(bridge, portrait, expression="angry"), 400),
        (post_render(bridge, portrait, expression="happy", intensity="1.5"), 400),
        (post_render(bridge, portrait, expression="happy", intensity="nan"), 400),
        (post_render(bridge, portrait, expression="happy", intensity="lots"), 400),
        (post_render(bridge, b"GIF89a not ours", "image/gif", expression="happy"), 415),
        (post_render(bridge, (DATA / "s1.jpg").read_bytes()[:2000], expression="happy"), 415),
        (post_render(bridge, _png(np.full((256, 256, 3), 90, np.uint8)), "image/png", expression="happy"), 422),
        (post_render(bridge, b"\xff\xd8\xff" + b"0" * 3_100_000, expression="happy"), 413),
        (httpx.post(bridge.url + "/api/render", json={"expression": "happy"}), 415),
        (httpx.get(bridge.url + "/nowhere"), 404),
        (httpx.get(bridge.url + "/api/render"), 405),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["message"]
    no_face = cases[7][0].json()["error"]
    assert no_face["code"] == "no_face" and no_face["message"].startswith("No face detected")
    assert httpx.get(bridge.url + "/health").status_code == 200


def test_metrics(bridge: BridgeProcess, portrait: bytes) -> None:
    post_render(bridge, portrait, expression="neutral")
    text = httpx.get(bridge.url + "/metrics").text
    for name in ("bridge_http_requests_total", "bridge_http_request_seconds_bucket", "engine_up 1.0",
                 'engine_stat{name="cache_frames_hit_rate"}', 'engine_stat{name="frames_render_ms_p50"}'):
        assert name in text


def test_engine_down_gives_503_quickly_and_recovers(tmp_path) -> None:
    engine = EngineProcess(tmp_path, env={"LP_WARMUP": "0"}).start()
    bridge = BridgeProcess(tmp_path, engine.command_addr, env={"LP_ENGINE_TIMEOUT_MS": "1000"}).start()
    try:
        assert httpx.get(bridge.url + "/health").status_code == 200
        engine.stop("kill")
        started = time.monotonic()
        response = httpx.get(bridge.url + "/health", timeout=5)
        assert response.status_code == 503 and time.monotonic() - started < 1.0
        assert response.json()["status"] == "unavailable"
        render = post_render(bridge, (DATA / "s1.jpg").read_bytes(), expression="happy")
        assert render.status_code == 503 and "retry-after" in render.headers
        engine.start()  # same addresses: the bridge reconnects by itself
        assert httpx.get(bridge.url + "/health").status_code == 200
    finally:
        bridge.stop()
        engine.stop()


def test_concurrent_requests_are_safe_and_a_full_queue_answers_503(engine: EngineProcess, tmp_path) -> None:
    import asyncio

    bridge = BridgeProcess(tmp_path, engine.command_addr,
                           env={"LP_BRIDGE_CONCURRENCY": "1", "LP_BRIDGE_QUEUE": "1"}).start()
    photo = (DATA / "s1.jpg").read_bytes()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(
                client.post(bridge.url + "/api/render", files={"source_image": ("s1.jpg", photo, "image/jpeg")},
                            data={"expression": "surprised", "intensity": f"{0.3 + i / 100:.2f}"})
                for i in range(12)))

    try:
        responses = asyncio.run(burst())
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503}, codes
        assert 200 in codes and 503 in codes, codes
        for r in responses:
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "busy"
            else:
                assert decode_jpeg(r.content).ndim == 3
        assert httpx.get(bridge.url + "/health").status_code == 200
    finally:
        bridge.stop()
