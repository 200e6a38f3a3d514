"""What a browser (or anything else) sends to the preview's endpoints: always JSON, 4xx on its errors, never a crash."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import wave

import httpx
import pytest
import websockets

from engine.client import EngineClient
from tests.service.conftest import DATA, BridgeProcess, EngineProcess


def post(bridge: BridgeProcess, path: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(bridge.url + path, content=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"not json", 400, "bad_request"),
    (b"[1, 2]", 400, "bad_request"),
    (b'{"cmd": "render", "avatar": "default"}', 400, "unknown_command"),
    (b'{"cmd": "health"}', 400, "unknown_command"),
    (b'{"cmd": "stream", "fps": 25}', 400, "bad_request"),
    (b'{"cmd": "stream", "avatar": "../../x", "fps": 25}', 400, "bad_request"),
    (b'{"cmd": "stream", "avatar": "default", "fps": "25"}', 400, "bad_request"),
    (b'{"cmd": "stream", "avatar": "default", "fps": true}', 400, "bad_request"),
    (b'{"cmd": "stream", "avatar": "default", "fps": 1e999}', 400, "bad_request"),
    (b'{"cmd": "stream", "avatar": "default", "fps": 5000}', 400, "bad_request"),
    (b'{"cmd": "stream", "avatar": "default", "image": "x"}', 400, "bad_request"),
    (b'{"cmd": "set_controls", "avatar": "default", "controls": {}}', 400, "bad_request"),
    (b'{"cmd": "set_controls", "avatar": "default", "controls": {"jawOpen": "wide"}}', 400, "bad_request"),
    (b'{"cmd": "set_controls", "avatar": "default", "controls": {"jawOpen": 7}}', 400, "bad_request"),
    (b'{"cmd": "set_controls", "avatar": "default", "controls": {"noSuchControl": 0.1}}', 400, "bad_request"),
    (b'{"cmd": "set_expression", "avatar": "default", "expression": "smug"}', 400, "bad_request"),
    (b'{"cmd": "set_idle", "avatar": "0123456789abcdef", "enabled": false}', 404, "unknown_avatar"),
    (b'{"cmd": "set_idle", "avatar": "default", "enabled": 1}', 400, "bad_request"),
    (b'{"cmd": "set_turn", "avatar": "default", "state": "napping"}', 400, "bad_request"),
    (b'{"cmd": "user_audio", "avatar": "default", "audio": "not base64!", "sample_rate": 16000}', 400, "bad_request"),
    (b'{"cmd": "user_audio", "avatar": "default", "audio": "AAE=AA", "sample_rate": 16000}', 400, "bad_request"),
    (b'{"cmd": "user_audio", "avatar": "default", "audio": "AA==", "sample_rate": 16000}', 400, "bad_request"),
    (b'{"cmd": "user_speech", "avatar": "default", "speaking": "yes"}', 400, "bad_request"),
])
def test_bad_commands_are_4xx_json(bridge: BridgeProcess, body: bytes, status: int, code: str) -> None:
    response = post(bridge, "/preview/api/command", body, **{"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()) == {"error"} and set(response.json()["error"]) == {"code", "message"}  # one shape
    assert httpx.get(bridge.url + "/health").status_code == 200


def test_preview_routes_are_counted_in_metrics_by_template(bridge: BridgeProcess) -> None:
    post(bridge, "/preview/api/command", b"not json")
    httpx.get(bridge.url + "/preview/api/stats", params={"avatar": "no/such"})
    metrics = httpx.get(bridge.url + "/metrics").text
    assert 'method="POST",route="/preview/api/command",status="400"' in metrics
    assert 'method="GET",route="/preview/api/stats",status="400"' in metrics
    assert 'bridge_http_request_seconds_count{route="/preview/api/command"}' in metrics


def test_good_command_passes_the_engines_reply(bridge: BridgeProcess) -> None:
    reply = post(bridge, "/preview/api/command", b'{"cmd": "set_idle", "avatar": "default", "enabled": true}').json()
    assert reply["ok"] is True and reply["renderer"] == "offline" and isinstance(reply["now"], float)


def test_source_upload_errors(bridge: BridgeProcess) -> None:
    assert post(bridge, "/preview/api/source", b"").status_code == 400
    assert post(bridge, "/preview/api/source", b"GIF89a" + b"\0" * 100).json()["error"]["code"] == "invalid_image"
    big = post(bridge, "/preview/api/source", b"\xff\xd8\xff" + b"\0" * 3_100_000)
    assert big.status_code == 413 and big.json()["error"]["code"] == "image_too_large"
    noface = post(bridge, "/preview/api/source", (DATA / "coffee.jpg").read_bytes())
    assert noface.status_code == 422 and noface.json()["error"]["code"] == "no_face"


def test_source_upload_makes_an_avatar(bridge: BridgeProcess) -> None:
    reply = post(bridge, "/preview/api/source", (DATA / "s3.jpg").read_bytes(), **{"content-type": "image/jpeg"})
    assert reply.status_code == 200 and reply.json()["faces"] >= 1 and len(reply.json()["avatar"]) == 16


def test_speak_refuses_what_is_not_a_wav(bridge: BridgeProcess) -> None:
    not_wav = post(bridge, "/preview/api/speak?avatar=default", b"ID3\x03mp3")
    assert not_wav.status_code == 415 and not_wav.json()["error"]["code"] == "unsupported_audio"
    assert post(bridge, "/preview/api/speak?avatar=../x", b"RIFF").status_code == 400
    cut = post(bridge, "/preview/api/speak?avatar=default", b"RIFF\x24\x00\x00\x00WAVEfmt ")  # header cut short
    assert cut.status_code == 400 and cut.json()["error"]["code"] == "bad_audio", cut.text
    assert cut.headers["content-type"] == "application/json"


def test_speak_moves_the_mouth_in_the_streamed_frames(bridge: BridgeProcess, engine: EngineProcess,
                                                      sentence_wav: bytes) -> None:
    """A real espeak-ng WAV through /preview/api/speak: the engine's reply, then jawOpen rising in the frame headers."""
    avatar = engine.request({"v": 1, "cmd": "stream", "avatar": "default", "fps": 25})["avatar"]
    try:
        with EngineClient(engine.command_addr) as client, client.subscribe(engine.frame_addr, avatar) as frames:
            assert frames.recv(timeout_ms=5000) is not None  # subscribed and flowing
            response = post(bridge, f"/preview/api/speak?avatar={avatar}", sentence_wav,
                            **{"content-type": "audio/wav"})
            assert response.status_code == 200, response.text
            reply = response.json()
            with wave.open(io.BytesIO(sentence_wav)) as w:
                seconds = w.getnframes() / w.getframerate()
            assert reply["ok"] is True and reply["avatar"] == avatar
            assert reply["duration"] == pytest.approx(seconds, abs=0.02)
            jaws = []
            deadline = time.monotonic() + reply["duration"] + 2.0
            while time.monotonic() < deadline:
                frame = frames.recv(timeout_ms=2000)
                assert frame is not None, "the stream stopped while speaking"
                if reply["start"] <= frame.ts <= reply["end"]:
                    jaws.append(frame.header["jawOpen"])
        assert len(jaws) >= 0.4 * 25 * reply["duration"], f"{len(jaws)} frames while speaking"
        assert max(jaws) > 0.15, f"the mouth did not open: jawOpen at most {max(jaws):.3f}"
        assert sum(j > 0.05 for j in jaws) >= 5 and min(jaws) < 0.1, "it moves: opens and closes"
    finally:
        engine.request({"v": 1, "cmd": "clear", "avatar": avatar})
        engine.request({"v": 1, "cmd": "stream", "avatar": avatar, "fps": 0})


def test_stats_clock_and_info(bridge: BridgeProcess, engine: EngineProcess) -> None:
    info = httpx.get(bridge.url + "/preview/api/info").json()
    assert info["expressions"] == ["neutral", "happy", "sad", "surprised"] and info["controls"]
    assert abs(info["clock"]["offset_s"]) > 0 and info["clock"]["rtt_ms"] < 5000
    # one machine, one monotonic clock: Unix minus engine time is this process's Unix minus monotonic (sign check)
    assert abs(info["clock"]["offset_s"] - (time.time() - time.monotonic())) < 5.0
    assert httpx.get(bridge.url + "/preview/api/stats").status_code == 400
    stats = httpx.get(bridge.url + "/preview/api/stats", params={"avatar": info["default_avatar"]}).json()
    assert stats["renderer"] == "offline"


def test_mjpeg_parts_are_jpegs(bridge: BridgeProcess, engine: EngineProcess) -> None:
    avatar = engine.request({"v": 1, "cmd": "stream", "avatar": "default", "fps": 25})["avatar"]
    assert httpx.get(bridge.url + "/preview/stream.mjpeg", params={"avatar": "a/b"}).status_code == 400
    with httpx.stream("GET", bridge.url + "/preview/stream.mjpeg", params={"avatar": avatar}, timeout=10) as r:
        assert r.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        buffer = b""
        for chunk in r.iter_bytes():
            buffer += chunk
            if buffer.count(b"--lpframe") >= 3:
                break
    part = buffer.split(b"--lpframe")[1]
    head, _, body = part.partition(b"\r\n\r\n")
    assert b"Content-Type: image/jpeg" in head and body.startswith(b"\xff\xd8")
    length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")).split(b":")[1])
    assert body[length - 2:length] == b"\xff\xd9"
    engine.request({"v": 1, "cmd": "stream", "avatar": avatar, "fps": 0})


def test_websocket_frames_and_bad_avatar(bridge: BridgeProcess, engine: EngineProcess) -> None:
    avatar = engine.request({"v": 1, "cmd": "stream", "avatar": "default", "fps": 25})["avatar"]
    ws_url = bridge.url.replace("http", "ws") + "/preview/ws"

    async def run() -> tuple[dict, bytes]:
        async with websockets.connect(f"{ws_url}?avatar={avatar}") as ws:
            await ws.send("anything the page sends is ignored")
            message = await asyncio.wait_for(ws.recv(), 10)
        (length,) = struct.unpack(">I", message[:4])
        return json.loads(message[4:4 + length]), message[4 + length:]

    header, jpeg = asyncio.run(run())
    assert header["avatar"] == avatar and isinstance(header["ts"], float) and jpeg.startswith(b"\xff\xd8")

    async def refused() -> None:
        async with websockets.connect(f"{ws_url}?avatar=../../etc") as ws:
            await asyncio.wait_for(ws.recv(), 5)

    with pytest.raises((websockets.exceptions.ConnectionClosed, websockets.exceptions.InvalidStatus)):
        asyncio.run(refused())
    engine.request({"v": 1, "cmd": "stream", "avatar": avatar, "fps": 0})
    assert httpx.get(bridge.url + "/health").status_code == 200


def test_viewers_are_bounded(bridge: BridgeProcess, engine: EngineProcess) -> None:
    """Each viewer costs the bridge a SUB socket and a copy of every frame: the ninth is turned away, not served."""
    avatar = engine.request({"v": 1, "cmd": "stream", "avatar": "default", "fps": 25})["avatar"]
    ws_url = bridge.url.replace("http", "ws") + f"/preview/ws?avatar={avatar}&jpeg=0"

    async def run() -> tuple[int, int]:
        sockets = [await websockets.connect(ws_url) for _ in range(8)]
        try:
            async with websockets.connect(ws_url) as extra:
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(extra.recv(), 5)
                closed_code = extra.close_code
            async with httpx.AsyncClient() as client:
                mjpeg = await client.get(bridge.url + "/preview/stream.mjpeg", params={"avatar": avatar})
            return closed_code, mjpeg.status_code
        finally:
            for sock in sockets:
                await sock.close()

    closed_code, mjpeg_status = asyncio.run(run())
    assert closed_code == 1013 and mjpeg_status == 503

    async def one_more() -> None:  # the slots come back when viewers leave
        async with websockets.connect(ws_url) as ws:
            await asyncio.wait_for(ws.recv(), 5)  # a header, not a 1013 close

    time.sleep(0.5)
    asyncio.run(one_more())
    for _ in range(2 * 8):  # MJPEG viewers that hang up give their slots back too
        with httpx.stream("GET", bridge.url + "/preview/stream.mjpeg", params={"avatar": avatar}, timeout=10) as r:
            assert r.status_code == 200
            next(r.iter_bytes())
    time.sleep(0.5)
    asyncio.run(one_more())
    engine.request({"v": 1, "cmd": "stream", "avatar": avatar, "fps": 0})
