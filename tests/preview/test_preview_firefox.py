"""/preview in headless Firefox (Debian firefox-esr), driven over WebDriver BiDi, the browser's own standard protocol:
Playwright drives only its own patched Firefox, and no browser is downloaded here."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.service.conftest import BridgeProcess, free_port

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(FIREFOX is None, reason="firefox-esr not installed (tools/system-deps.sh)")]


class Bidi:
    """The few WebDriver BiDi commands the test needs, over one WebSocket."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.next_id, self.context = ws, 0, ""
        self.errors: list[str] = []

    async def call(self, method: str, params: dict) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("method") == "log.entryAdded" and message["params"].get("level") == "error":
                self.errors.append(message["params"].get("text", ""))
            if message.get("id") == self.next_id:
                assert message.get("type") != "error", message
                return message["result"]

    async def js(self, expression: str) -> Any:
        reply = await self.call("script.evaluate", {"expression": expression, "awaitPromise": True,
                                                    "target": {"context": self.context}})
        assert reply["type"] == "success", reply
        return reply["result"].get("value")

    async def wait(self, expression: str, timeout: float = 30.0) -> None:
        for _ in range(int(timeout / 0.1)):
            if await self.js(f"!!({expression})"):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(expression)


@pytest.mark.parametrize("transport", ["ws", "mjpeg"])
def test_firefox_streams_and_drives_the_face(bridge: BridgeProcess, tmp_path: Path, transport: str) -> None:
    port = free_port()
    profile = tmp_path / "profile"
    profile.mkdir()
    with open(tmp_path / "firefox.log", "wb") as log:
        firefox = subprocess.Popen([FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
                                    "--remote-debugging-port", str(port), "--window-size=1200,900"],
                                   stdout=log, stderr=subprocess.STDOUT)

    async def run() -> tuple[list[str], bytes, bytes]:
        for _ in range(300):
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/session", max_size=2**26)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise TimeoutError((tmp_path / "firefox.log").read_text()[-2000:])
        async with ws:
            bidi = Bidi(ws)
            await bidi.call("session.new", {"capabilities": {}})
            await bidi.call("session.subscribe", {"events": ["log.entryAdded"]})
            bidi.context = (await bidi.call("browsingContext.getTree", {}))["contexts"][0]["context"]
            await bidi.call("browsingContext.navigate", {"context": bidi.context, "wait": "complete",
                                                         "url": f"{bridge.url}/preview?transport={transport}"})
            await bidi.wait("window.preview && window.preview.ready && window.preview.frames > 3", 60)
            count = await bidi.js("window.preview.frames")
            shots = []
            for _ in range(2):
                shot = await bidi.call("browsingContext.captureScreenshot", {"context": bidi.context})
                shots.append(base64.b64decode(shot["data"]))
                await asyncio.sleep(1.0)
            await bidi.wait(f"window.preview.frames > {count + 5}")
            await bidi.js("document.querySelector('[data-expression=surprised]').click()")
            await bidi.wait("window.preview.lastHeader.expression === 'surprised'", 5)
            await bidi.js("document.querySelector('[data-expression=neutral]').click()")
            await bidi.wait("window.preview.lastHeader.expression === 'neutral'", 5)
            if transport == "mjpeg":
                assert await bidi.js("document.getElementById('mjpeg').naturalWidth") > 0
            return bidi.errors, shots[0], shots[1]

    try:
        errors, first, second = asyncio.run(run())
    finally:
        firefox.terminate()
        firefox.wait(timeout=20)
    assert first != second, "the page did not change between two screenshots"
    assert errors == []
