"""SIGTERM in the middle of work: a prompt, clean exit (issue 12, item 4: stop intake, drain, join, then close)."""

from __future__ import annotations

import time

import msgpack
import zmq

from tests.service.conftest import EngineProcess


def test_sigterm_while_streaming_and_rendering_exits_cleanly(tmp_path) -> None:
    eng = EngineProcess(tmp_path, env={"LP_WARMUP": "0"}).start()
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(eng.command_addr)
    try:
        assert eng.request({"v": 1, "cmd": "stream", "avatar": "default", "fps": 30})["ok"]
        for i in range(8):  # distinct states: none is cached, so they queue for render and encode
            dealer.send_multipart([b"", msgpack.packb({"v": 1, "cmd": "render", "avatar": "default",
                                                       "expression": "happy", "intensity": i / 10})])
        time.sleep(0.2)
        started = time.monotonic()
        code = eng.stop()
        took = time.monotonic() - started
    finally:
        dealer.close(0)
    log = eng.log.read_text()
    assert code == 0, log[-3000:]
    assert took < 10.0, f"took {took:.1f} s to stop"
    assert "engine stopped" in log and "Traceback" not in log, log[-3000:]
