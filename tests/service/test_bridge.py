"""The HTTP contract, byte for byte, on a real uvicorn server in front of a real engine."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from engine.codec import decode_jpeg
from tests.service.conftest import DATA, ROOT, BridgeProcess, EngineProcess, Peer
from tests.service.live import speech_wav


def post_render(bridge: BridgeProcess, image: bytes | None, content_type: str = "image/jpeg",
                **fields: str) -> httpx.Response:
    files = {"source_image": ("photo", image, content_type)} if image is not None else None
    return httpx.post(bridge.url + "/api/render", files=files, data=fields, timeout=60)


def _wait_held(peer: Peer, count: int, timeout: float = 10.0) -> None:
    """Wait until the stalling engine holds `count` requests; a bridge that never forwards them fails, not hangs."""
    deadline = time.monotonic() + timeout
    while peer.held < count:
        assert time.monotonic() < deadline, f"{peer.held} of {count} requests reached the engine"
        time.sleep(0.05)


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
    engine = EngineProcess(tmp_path, env={"LP_WARMUP": "0"}).start(wait=False)  # starts while the bridge does
    bridge = BridgeProcess(tmp_path, engine.command_addr, env={"LP_ENGINE_TIMEOUT_MS": "1000"}).start()
    try:
        engine.wait_ready()
        assert httpx.get(bridge.url + "/health").status_code == 200
        engine.stop("kill")
        started = time.monotonic()
        response = httpx.get(bridge.url + "/health", timeout=5)
        assert response.status_code == 503 and time.monotonic() - started < 2.5  # 0.5 s probe timeout
        assert response.json()["status"] == "unavailable"
        render = post_render(bridge, (DATA / "s1.jpg").read_bytes(), expression="happy")
        assert render.status_code == 503 and "retry-after" in render.headers
        engine.start()  # same addresses: the bridge reconnects by itself
        assert httpx.get(bridge.url + "/health").status_code == 200
    finally:
        bridge.stop()
        engine.stop()


def test_concurrent_requests_are_safe(engine: EngineProcess, tmp_path) -> None:
    import asyncio

    bridge = BridgeProcess(tmp_path, engine.command_addr, env={"LP_BRIDGE_CONCURRENCY": "2"}).start()
    photo = (DATA / "s1.jpg").read_bytes()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(
                client.post(bridge.url + "/api/render", files={"source_image": ("s1.jpg", photo, "image/jpeg")},
                            data={"expression": "surprised", "intensity": f"{0.3 + i / 100:.2f}"})
                for i in range(8)))

    try:
        responses = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 8
        assert len({r.content for r in responses}) == 8  # each its own intensity: no mixed-up replies
        for r in responses:
            assert decode_jpeg(r.content).ndim == 3
    finally:
        bridge.stop()


# ---------------------------------------------------------------------------------------------- edges (issue 12)

@pytest.fixture
def stalling(peer_factory, tmp_path) -> Iterator[tuple[Peer, BridgeProcess]]:
    """A bridge in front of an engine whose renders never finish (health still answers ok)."""
    peer = peer_factory(hold=("render",))
    bridge = BridgeProcess(tmp_path, peer.addr, env={"LP_BRIDGE_CONCURRENCY": "1", "LP_BRIDGE_QUEUE": "1",
                                                     "LP_SHUTDOWN_TIMEOUT_S": "0.5"}).start()
    yield peer, bridge
    bridge.stop()


def _background_renders(bridge: BridgeProcess, n: int) -> list[threading.Thread]:
    photo = (DATA / "s1.jpg").read_bytes()

    def one() -> None:
        with contextlib.suppress(httpx.HTTPError):
            post_render(bridge, photo, expression="happy")

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def test_full_queue_answers_503_busy_at_once(stalling) -> None:
    """One render holds the only socket, one waits (queue 1): the next is refused at once, not queued for 20 s.

    When the second background render reaches the queue is not observable from outside, so probe instead of
    sleeping: a probe that finds the queue not yet full becomes the waiter itself (and times out here, holding the
    slot), so a later probe must be refused. With the bug back every probe hangs and the deadline fails the test.
    """
    peer, bridge = stalling
    _background_renders(bridge, 2)
    _wait_held(peer, 1)
    photo = (DATA / "s1.jpg").read_bytes()
    deadline = time.monotonic() + 15
    while True:
        assert time.monotonic() < deadline, "a full queue never refused a render at once"
        started = time.monotonic()
        try:
            response = httpx.post(bridge.url + "/api/render", files={"source_image": ("s1.jpg", photo, "image/jpeg")},
                                  data={"expression": "happy"}, timeout=2.5)
        except httpx.TimeoutException:
            continue  # the queue was not full yet: this probe is now the waiter
        break
    assert response.status_code == 503 and time.monotonic() - started < 2.5, response.text
    assert response.json()["error"]["code"] == "busy" and response.headers["retry-after"] == "1"


def test_health_never_waits_behind_renders(stalling) -> None:
    peer, bridge = stalling
    _background_renders(bridge, 2)
    _wait_held(peer, 1)
    for _ in range(3):
        started = time.monotonic()
        response = httpx.get(bridge.url + "/health", timeout=5)
        assert response.status_code == 200 and time.monotonic() - started < 2.5  # before: hung behind renders


def test_renders_go_through_while_clips_hold_their_own_pool(peer_factory, tmp_path) -> None:
    """Three /api/speak clips that the engine never finishes: two hold the clip pool (its bound), the third waits
    for it; meanwhile renders, on the one render socket, are answered at once. Before the clips had their own
    pool, the first clip held that socket and every render waited behind it."""
    peer = peer_factory(hold=("speak_clip",))
    bridge = BridgeProcess(tmp_path, peer.addr, env={"LP_BRIDGE_CONCURRENCY": "1",
                                                     "LP_BRIDGE_CLIP_CONCURRENCY": "2"}).start()
    photo, audio = (DATA / "s1.jpg").read_bytes(), speech_wav(0.5)

    def clip() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(bridge.url + "/api/speak", files={"source_image": ("s1.jpg", photo, "image/jpeg"),
                                                         "audio": ("a.wav", audio, "audio/wav")}, timeout=30)

    try:
        for _ in range(3):
            threading.Thread(target=clip, daemon=True).start()
        _wait_held(peer, 2)
        for _ in range(3):
            response = httpx.post(bridge.url + "/api/render", files={"source_image": ("s1.jpg", photo)}, timeout=5)
            assert response.status_code == 200 and response.headers["x-renderer"] == "peer", response.text
        assert peer.held == 2  # the third clip waits for the clip pool, not for (or on) the render socket
    finally:
        bridge.stop()


def test_renders_in_flight_are_released_when_the_engine_dies(peer_factory, tmp_path) -> None:
    peer = peer_factory(hold=("render",))
    bridge = BridgeProcess(tmp_path, peer.addr, env={"LP_BRIDGE_CONCURRENCY": "4", "LP_PROBE_INTERVAL_MS": "200"})
    bridge.start()
    results: list[httpx.Response] = []
    photo = (DATA / "s1.jpg").read_bytes()
    threads = [threading.Thread(target=lambda: results.append(post_render(bridge, photo, expression="sad")))
               for _ in range(4)]
    try:
        for t in threads:
            t.start()
        _wait_held(peer, 4)
        peer.close()  # the engine dies with 4 renders waiting (timeout 20 s x 2 tries before)
        started = time.monotonic()
        for t in threads:
            t.join(10)
        assert time.monotonic() - started < 5.0  # before: 20 s x 2 tries
        assert [r.status_code for r in results] == [503] * 4
        assert all(r.json()["error"]["code"] == "engine_unavailable" for r in results)
        started = time.monotonic()
        late = post_render(bridge, photo, expression="sad")  # known down: refused within the probe timeout
        assert late.status_code == 503 and time.monotonic() - started < 2.5  # the probe timeout (0.5 s), not 40 s
        assert httpx.get(bridge.url + "/health", timeout=5).status_code == 503
    finally:
        bridge.stop()


def test_sigterm_exits_promptly_with_requests_pending(stalling) -> None:
    peer, bridge = stalling
    _background_renders(bridge, 3)
    _wait_held(peer, 1)
    assert bridge.proc is not None
    started = time.monotonic()
    bridge.proc.send_signal(signal.SIGTERM)
    code = bridge.proc.wait(timeout=10)
    assert time.monotonic() - started < 6.0  # before: until the engine's 20 s x 2 tries ran out
    assert code == -signal.SIGTERM  # uvicorn's own exit (it re-raises the signal), not the exit deadline's 70
    log = bridge.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def test_oversized_body_gets_its_413_with_urllib(bridge: BridgeProcess) -> None:
    """urllib sends the whole body without Expect: 100-continue; it must read the 413, not a broken pipe."""
    boundary = "xYzZy"
    image = b"\xff\xd8\xff" + os.urandom(12_000_000)  # 4x the bridge's 3 MB limit, more than socket buffers hold
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"source_image\"; filename=\"a.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(bridge.url + "/api/render", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 413
    assert json.loads(err.value.read())["error"]["code"] == "image_too_large"


def test_chunked_oversized_body_gets_its_413(bridge: BridgeProcess) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"0" * 250_000

    response = httpx.post(bridge.url + "/api/render", content=chunks(), timeout=30,
                          headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "image_too_large"


def _raw(bridge: BridgeProcess, data: bytes, wait_s: float = 10.0) -> bytes:
    """Send raw bytes; everything the bridge answers until it closes the connection (or ``wait_s`` passes)."""
    with socket.create_connection(("127.0.0.1", bridge.port), timeout=wait_s) as sock:
        sock.sendall(data)
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                out += chunk
        return out


def test_malformed_http_gets_a_json_400_and_the_connection_closes(bridge: BridgeProcess) -> None:
    started = time.monotonic()
    answer = _raw(bridge, b"GARBAGE / NOPE\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "bad_request"
    # `connection: close` is kept: the bridge hangs up (the 10 s wait for it is not reached), no socket left held
    assert b"connection: close" in head.lower() and time.monotonic() - started < 5


def test_slow_body_times_out_with_408(engine: EngineProcess, tmp_path) -> None:
    bridge = BridgeProcess(tmp_path, engine.command_addr, env={"LP_BODY_TIMEOUT_S": "1"}).start()
    try:
        started = time.monotonic()
        answer = _raw(bridge, b"POST /api/render HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                              b"boundary=x\r\nContent-Length: 1000\r\n\r\n--x\r\n", wait_s=10)
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "body_timeout"
        for path in (b"/preview/api/command", b"/preview/api/source"):  # the preview reads bodies the same way
            started = time.monotonic()
            answer = _raw(bridge, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 100\r\n\r\n{", wait_s=10)
            assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5, (path, answer)
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "body_timeout"
    finally:
        bridge.stop()


def test_trailing_slash_is_a_404_not_a_307(bridge: BridgeProcess, portrait: bytes) -> None:
    response = post_render_to(bridge, "/api/render/", portrait)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert "/api/render?" in response.json()["error"]["message"]
    assert httpx.get(bridge.url + "/health/").status_code == 404


def post_render_to(bridge: BridgeProcess, path: str, image: bytes) -> httpx.Response:
    return httpx.post(bridge.url + path, files={"source_image": ("p.jpg", image, "image/jpeg")}, timeout=60)


def test_every_error_is_logged_with_its_code(bridge: BridgeProcess) -> None:
    httpx.get(bridge.url + "/no/such/page")
    post_render(bridge, b"GIF89a", "image/gif")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = bridge.log.read_text()
        if "GET /no/such/page -> 404 not_found" in log and "POST /api/render -> 415 invalid_image" in log:
            return
        time.sleep(0.1)
    raise AssertionError(bridge.log.read_text()[-3000:])


def test_webp_is_accepted_like_the_engine_accepts_it(bridge: BridgeProcess, portrait: bytes) -> None:
    out = io.BytesIO()
    Image.open(io.BytesIO(portrait)).save(out, format="WEBP", quality=90)
    response = post_render(bridge, out.getvalue(), "image/webp", expression="happy")
    assert response.status_code == 200, response.text
    assert decode_jpeg(response.content).ndim == 3


def test_help_lists_the_choices() -> None:
    out = subprocess.run([sys.executable, "-m", "bridge", "--help"], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    out = " ".join(out.split())
    assert "DEBUG / INFO / WARNING / ERROR" in out and "LP_MAX_DISCARD_BYTES" in out


def test_status_says_what_the_engine_runs(bridge: BridgeProcess) -> None:
    body = httpx.get(bridge.url + "/status").json()
    assert body["status"] == "ok" and body["renderer"] == "offline" and body["renderer_reason"]
    assert body["device"] == "cpu" and body["dtype"] == "uint8"
    assert body["face_detector"] == "dlib" and body["face_detector_reason"]
    assert body["avatars"] >= 1 and isinstance(body["streams"], dict)
    assert "render_ms_p50" in body["frames"] and "frames" in body["caches"]


def test_status_is_503_when_the_engine_is_down(peer_factory, tmp_path) -> None:
    peer = peer_factory(silent=True)
    bridge = BridgeProcess(tmp_path, peer.addr).start()
    try:
        response = httpx.get(bridge.url + "/status", timeout=5)
        assert response.status_code == 503 and response.json()["status"] == "unavailable"
    finally:
        bridge.stop()


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_oversized_body_gets_its_413_with_node_fetch(bridge: BridgeProcess) -> None:
    """Node's fetch streams the body without Expect: 100-continue, like urllib."""
    script = (
        "const form = new FormData();"
        "form.append('source_image', new Blob([new Uint8Array(12_000_000).fill(48)], {type: 'image/jpeg'}), 'a.jpg');"
        f"fetch('{bridge.url}/api/render', {{method: 'POST', body: form}})"
        ".then(async r => console.log(r.status, JSON.stringify(await r.json())))"
        ".catch(e => { console.log('ERR', e.cause ? e.cause.code : e.message); process.exit(1); });")
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    status, _, body = out.stdout.strip().partition(" ")
    assert status == "413", out.stdout + out.stderr
    assert json.loads(body)["error"]["code"] == "image_too_large"
