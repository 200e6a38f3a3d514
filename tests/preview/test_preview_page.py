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


def test_a_slider_sets_its_control_in_the_frame_headers(page) -> None:
    """jawOpen is in every frame header: the slider's value must reach it (idle life alone never opens the jaw)."""
    tab, errors = page
    tab.wait_for_function("window.preview.lastHeader.jawOpen < 0.02", timeout=5_000)
    before = tab.locator("#canvas").screenshot()
    tab.locator("#control-jawOpen").fill("0.9")
    tab.wait_for_function("Math.abs(window.preview.lastHeader.jawOpen - 0.9) < 0.02", timeout=5_000)
    assert tab.locator("#canvas").screenshot() != before
    tab.locator("#control-jawOpen").fill("0.4")
    tab.wait_for_function("Math.abs(window.preview.lastHeader.jawOpen - 0.4) < 0.02", timeout=5_000)
    tab.click("#clear")
    tab.wait_for_function("window.preview.lastHeader.jawOpen < 0.02", timeout=5_000)
    assert errors == []


def test_make_it_talk_moves_the_mouth(page, sentence_wav: bytes) -> None:
    """A real espeak-ng WAV through the page's "make it talk": the engine's reply, then the mouth opening and
    closing in the frame headers the page shows."""
    tab, errors = page
    tab.wait_for_function("window.preview.lastHeader.jawOpen < 0.02", timeout=5_000)  # no slider left open
    tab.evaluate("""() => {
        window.jaws = [];
        window.jawTimer = setInterval(() => window.jaws.push(window.preview.lastHeader.jawOpen), 20);
    }""")
    tab.set_input_files("#wav", files=[{"name": "hello.wav", "mimeType": "audio/wav", "buffer": sentence_wav}])
    tab.click("#speak")
    tab.wait_for_function("!['', 'sending...'].includes(document.getElementById('speak-result').textContent)",
                          timeout=10_000)
    text = tab.locator("#speak-result").inner_text()
    assert text.startswith("speaking") and '"ok":true' in text, text
    tab.wait_for_function("Math.max(...window.jaws) > 0.15", timeout=10_000)
    # then shut again for a second (the end of the sentence, or a pause longer than espeak's): it moves, not sticks
    tab.wait_for_function("window.jaws.slice(window.jaws.findIndex(j => j > 0.15)).slice(-50)"
                          ".filter(j => j < 0.05).length === 50", timeout=20_000)
    jaws = tab.evaluate("() => { clearInterval(window.jawTimer); return window.jaws; }")
    assert sum(j > 0.05 for j in jaws) >= 10, "the mouth was open for a moment only"
    assert errors == []


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


def test_turn_selector_barge_in_and_the_microphone_drive_the_turn(page, engine: EngineProcess) -> None:
    tab, errors = page
    avatar = tab.evaluate("window.preview.avatar")

    def engine_turn() -> str:
        return engine.request({"v": 1, "cmd": "list_avatars"})["turns"][avatar]

    tab.select_option("#turn", "thinking")
    tab.wait_for_function("window.preview.turn === 'thinking'", timeout=5_000)
    assert engine_turn() == "thinking"
    tab.click("#barge-in")  # clear: the user has the turn
    tab.wait_for_function("window.preview.turn === 'listening'", timeout=5_000)
    assert engine_turn() == "listening"
    tab.select_option("#turn", "idle")
    tab.wait_for_function("window.preview.turn === 'idle'", timeout=5_000)
    # the fake microphone (a beep) streamed as user_audio: 100 ms chunks reach the engine, which listens
    tab.click("#talk")
    tab.wait_for_function("window.preview.mic.sent >= 10", timeout=15_000)
    tab.wait_for_function("window.preview.turn === 'listening'", timeout=10_000)
    assert engine_turn() == "listening"
    frames = tab.evaluate("window.preview.frames")
    tab.click("#talk")  # stop
    sent = tab.evaluate("window.preview.mic.sent")
    tab.wait_for_timeout(500)
    assert tab.evaluate("window.preview.mic.sent") <= sent + 2  # at most what was in flight
    assert tab.evaluate("window.preview.frames") > frames - 1
    engine.request({"v": 1, "cmd": "set_turn", "avatar": avatar, "state": "idle"})
    assert errors == []
