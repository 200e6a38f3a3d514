"""/preview in headless Chromium against a real engine and bridge: loads clean, frames advance, it drives the face."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.service.conftest import DATA, BridgeProcess, EngineProcess

pytestmark = pytest.mark.timeout(240)


@pytest.fixture()
def page(browser, bridge: BridgeProcess, engine: EngineProcess) -> Iterator[tuple[object, list[str]]]:
    """The page, loaded and streaming, with the console errors and page errors it produced."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(bridge.url + "/preview?transport=ws")  # the canvas (WebRTC, the default: tests/preview/test_whep.py)
    tab.wait_for_function("window.preview && window.preview.ready && window.preview.frames > 3", timeout=60_000)
    yield tab, errors
    context.close()
    default = engine.request({"v": 1, "cmd": "list_avatars"})["default"]
    engine.request({"v": 1, "cmd": "set_expression", "avatar": default, "expression": "neutral", "intensity": 1.0})


def test_page_loads_without_console_errors_and_frames_advance(page) -> None:
    tab, errors = page
    first_count = tab.evaluate("window.preview.frames")
    first = tab.locator("#canvas").screenshot()
    tab.wait_for_timeout(1500)
    second = tab.locator("#canvas").screenshot()
    assert tab.evaluate("window.preview.frames") > first_count
    assert first != second, "successive screenshots of the stream are identical"
    assert tab.locator("#fig-renderer").inner_text() == "offline"
    assert int(tab.locator("#fig-fps").inner_text()) > 0
    assert errors == []


def test_a_slider_for_every_control_the_engine_lists(page, engine: EngineProcess) -> None:
    tab, _ = page
    controls = engine.request({"v": 1, "cmd": "expressions"})["controls"]
    names = tab.eval_on_selector_all("#controls input[type=range]", "els => els.map(e => e.dataset.control)")
    assert names == [c["name"] for c in controls]
    assert tab.eval_on_selector_all("#expressions button", "els => els.map(e => e.textContent)") == [
        "neutral", "happy", "sad", "surprised"]


def test_clicking_happy_changes_the_frame_headers_within_500_ms(page) -> None:
    tab, errors = page
    assert tab.evaluate("window.preview.lastHeader.expression") != "happy"
    # Timed in the page (click event -> first frame shown whose header says happy), not across Playwright's pipe.
    tab.evaluate("""() => document.querySelector('[data-expression=happy]').addEventListener(
        'click', () => { window.clickedAt = performance.now(); }, { capture: true })""")
    tab.click("#expressions button[data-expression=happy]")
    tab.wait_for_function("window.preview.lastHeader.expression === 'happy'", timeout=5_000)
    elapsed_ms = tab.evaluate("window.preview.expressionSince - window.clickedAt")
    assert 0 < elapsed_ms < 500, f"the frame headers said 'happy' {elapsed_ms:.0f} ms after the click"
    assert errors == []


def test_uploading_a_portrait_switches_the_avatar(page, engine: EngineProcess) -> None:
    tab, errors = page
    image = DATA / "s1.jpg"
    expected = hashlib.sha256(image.read_bytes()).hexdigest()[:16]
    before = tab.evaluate("window.preview.avatar")
    assert before != expected
    tab.set_input_files("#portrait", str(image))
    tab.wait_for_function(f"window.preview.lastHeader && window.preview.lastHeader.avatar === '{expected}'",
                          timeout=30_000)
    assert tab.locator("#fig-avatar").inner_text() == expected
    streams = engine.request({"v": 1, "cmd": "list_avatars"})["streams"]
    assert expected in streams and before not in streams  # the page stops what it no longer shows
    engine.request({"v": 1, "cmd": "stream", "avatar": expected, "fps": 0})
    assert errors == []


def test_a_slider_moves_the_face(page) -> None:
    tab, _ = page
    tab.evaluate("window.preview.ready")
    before = tab.locator("#canvas").screenshot()
    tab.locator("#control-jawOpen").fill("0.9")
    tab.wait_for_timeout(800)
    assert tab.locator("#canvas").screenshot() != before
    tab.click("#clear")


def test_make_it_talk_shows_the_engines_answer(page) -> None:
    tab, _ = page
    tab.set_input_files("#wav", files=[{"name": "hello.wav", "mimeType": "audio/wav",
                                        "buffer": _wav(0.2)}])
    tab.click("#speak")
    tab.wait_for_function("!['', 'sending...'].includes(document.getElementById('speak-result').textContent)",
                          timeout=10_000)
    text = tab.locator("#speak-result").inner_text()
    assert text.startswith("speaking") or ":" in text  # the engine's reply, or its error code and message


def test_mjpeg_transport_shows_frames(browser, bridge: BridgeProcess) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(bridge.url + "/preview?transport=mjpeg")
    tab.wait_for_function("window.preview.ready", timeout=60_000)
    tab.wait_for_function("document.getElementById('mjpeg').naturalWidth > 0", timeout=10_000)
    first = tab.locator("#mjpeg").screenshot()
    tab.wait_for_timeout(1500)
    assert tab.locator("#mjpeg").screenshot() != first
    assert tab.locator("#fig-transport").inner_text().startswith("MJPEG")
    count = tab.evaluate("window.preview.frames")  # headers come by a WebSocket without the JPEGs
    tab.wait_for_function(f"window.preview.frames > {count}", timeout=5_000)
    tab.click("#expressions button[data-expression=sad]")
    tab.wait_for_function("window.preview.lastHeader.expression === 'sad'", timeout=5_000)
    tab.click("#expressions button[data-expression=neutral]")
    context.close()
    assert errors == []


def _wav(seconds: float, rate: int = 16_000) -> bytes:
    import io
    import math
    import struct
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(int(seconds * rate))))
    return out.getvalue()
