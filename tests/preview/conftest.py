"""A real engine and bridge on loopback, and headless Debian Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.service.conftest import BridgeProcess, EngineProcess
from tests.speech.conftest import SENTENCE, espeak

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 # a microphone for "user talks": Chromium's own fake device (a beep), allowed without a prompt
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("engine")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def bridge(engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    proc = BridgeProcess(tmp_path_factory.mktemp("bridge"), engine.command_addr,
                         env={"LP_FRAME_ADDR": engine.frame_addr, "LP_MAX_UPLOAD_BYTES": "3000000"}).start()
    yield proc
    proc.stop()


@contextlib.contextmanager
def launched(args: list[str]) -> Iterator[object]:
    """Debian's Chromium, headless, through Playwright, with these flags."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched(CHROMIUM_ARGS) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A sentence as espeak-ng's own WAV (22050 Hz mono 16-bit, about 3 s): real speech for "make it talk"."""
    return espeak(tmp_path_factory.mktemp("espeak") / "sentence.wav", SENTENCE).read_bytes()
