"""CURVE on the engine's sockets (issue 12, item 7): listed clients get in, encrypted; anyone else gets nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import zmq
import zmq.auth

from engine.client import EngineClient, EngineUnavailable
from engine.errors import ConfigError
from engine.security import (
    CurveClientKeys,
    CurveKeys,
    generate,
    load_curve_keys,
    load_public_key,
)
from tests.service.conftest import DATA, BridgeProcess, EngineProcess

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")


def curve_request(addr: str, server: bytes, keys: CurveKeys | None, timeout_ms: int = 1500) -> dict | None:
    """``health`` through the one client, with or without CURVE keys; None when the engine does not answer."""
    curve = CurveClientKeys(server, keys) if keys is not None else None
    with EngineClient(addr, timeout_ms=timeout_ms, retries=0, curve=curve) as client:
        try:
            return client.call("health")
        except EngineUnavailable:
            return None


def test_keys_load_from_files_and_env(tmp_path: Path) -> None:
    generate(tmp_path / "keys", ["bridge"])
    from_file = load_curve_keys(tmp_path / "keys" / "clients" / "bridge.key_secret")
    assert from_file is not None and len(from_file.public) == 40
    from_env = load_curve_keys(None, {"LP_CURVE_CLIENT_SECRET_KEY": from_file.secret.decode()},
                               "LP_CURVE_CLIENT_SECRET_KEY")
    assert from_env == from_file
    assert load_public_key(tmp_path / "keys" / "server.key") == load_curve_keys(
        tmp_path / "keys" / "server.key_secret").public  # type: ignore[union-attr]
    assert load_curve_keys(None, {}) is None
    with pytest.raises(ConfigError):
        load_curve_keys(None, {"LP_CURVE_SECRET_KEY": "too short"})


@dataclass(frozen=True)
class CurveEngine:
    engine: EngineProcess
    keys: Path  # KEYS_DIR: server.key(_secret), clients/bridge.key(_secret)
    server: bytes
    bridge: CurveKeys
    stranger: CurveKeys  # a valid keypair the engine does not list


@pytest.fixture(scope="module")
def curve_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CurveEngine]:
    """One engine with CURVE on, shared by the tests of what it lets in (each start costs seconds)."""
    tmp = tmp_path_factory.mktemp("curve")
    keys = tmp / "keys"
    generate(keys, ["bridge"])
    zmq.auth.create_certificates(tmp, "stranger")
    server = load_public_key(keys / "server.key")
    bridge = load_curve_keys(keys / "clients" / "bridge.key_secret")
    stranger = load_curve_keys(tmp / "stranger.key_secret")
    assert server and bridge and stranger
    eng = EngineProcess(tmp, env={"LP_CURVE_KEYS_DIR": str(keys), "LP_WARMUP": "0"}).start(wait=False)
    try:
        deadline = time.monotonic() + 90
        while (reply := curve_request(eng.command_addr, server, bridge)) is None or reply["status"] != "ok":
            assert time.monotonic() < deadline and eng.alive(), eng.log.read_text()[-3000:]
            time.sleep(0.2)
        yield CurveEngine(eng, keys, server, bridge, stranger)
    finally:
        assert eng.stop() == 0


def test_only_listed_clients_are_answered_and_frames_are_encrypted(curve_engine: CurveEngine) -> None:
    eng, server, bridge = curve_engine.engine, curve_engine.server, curve_engine.bridge
    assert curve_request(eng.command_addr, server, bridge) is not None  # listed: answered
    assert curve_request(eng.command_addr, server, None) is None  # plain text: no answer
    assert curve_request(eng.command_addr, server, curve_engine.stranger) is None  # unlisted key: no answer
    with EngineClient(eng.command_addr, timeout_ms=5000, curve=CurveClientKeys(server, bridge)) as client, \
            client.subscribe(eng.frame_addr) as frames:
        assert client.stream("default", fps=20).fps == 20  # a late-joining subscriber gets the later frames
        try:
            frame = frames.recv(5000)
        finally:
            client.stream("default", fps=0)
        assert frame is not None and frame.topic.startswith("frame."), "a listed subscriber receives frames"


def test_bridge_with_keys_renders_and_a_bridge_without_keys_answers_503(curve_engine: CurveEngine,
                                                                        tmp_path: Path) -> None:
    """The container's wiring: engine with LP_CURVE_KEYS_DIR, bridge with the files the entrypoint writes."""
    eng, keys = curve_engine.engine, curve_engine.keys
    with_keys = BridgeProcess(tmp_path / "with", eng.command_addr, env={
        "LP_CURVE_SERVER_KEY_FILE": str(keys / "server.key"),
        "LP_CURVE_CLIENT_SECRET_FILE": str(keys / "clients" / "bridge.key_secret")})
    no_keys = BridgeProcess(tmp_path / "without", eng.command_addr, env={"LP_HEALTH_TIMEOUT_MS": "300"})
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    try:
        with_keys.start()
        no_keys.start()
        deadline = time.monotonic() + 90
        while (health := httpx.get(with_keys.url + "/health", timeout=5)).status_code != 200:
            assert time.monotonic() < deadline and eng.alive(), eng.log.read_text()[-3000:]
            time.sleep(0.3)
        assert health.json()["status"] == "ok"
        photo = (DATA / "astronaut.jpg").read_bytes()
        render = httpx.post(with_keys.url + "/api/render", files={"source_image": ("a.jpg", photo, "image/jpeg")},
                            data={"expression": "happy"}, timeout=60)
        assert render.status_code == 200 and render.headers["content-type"] == "image/jpeg", render.text
        assert httpx.get(no_keys.url + "/health", timeout=5).status_code == 503
        refused = httpx.post(no_keys.url + "/api/render", files={"source_image": ("a.jpg", photo, "image/jpeg")},
                             timeout=60)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "engine_unavailable", refused.text
    finally:
        with_keys.stop()
        no_keys.stop()


def test_bridge_refuses_half_a_curve_configuration_at_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    generate(tmp_path, ["bridge"])
    for args, reason in ((["--curve-server-key-file", str(tmp_path / "server.key")], "half configured"),
                         (["--curve-server-key-file", str(tmp_path / "missing.key"),
                           "--curve-client-secret-file", str(tmp_path / "clients" / "bridge.key_secret")],
                          "cannot read")):
        done = subprocess.run([sys.executable, "-m", "bridge", "--port", "0", *args], cwd=root, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and reason in done.stderr, done.stderr


def test_the_compose_example_turns_curve_on() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    service = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["secretary-liveportrait"]
    env = service["environment"]
    assert env["LP_CURVE_KEYS_DIR"] == "/app/keys"
    # the bridge runs in the same container (engine.serve) and must use the keys the entrypoint writes
    assert env["LP_CURVE_SERVER_KEY_FILE"] == "/app/keys/server.key"
    assert env["LP_CURVE_CLIENT_SECRET_FILE"] == "/app/keys/clients/bridge.key_secret"
    assert "liveportrait-keys:/app/keys" in service["volumes"]
    assert "engine.security generate" in (root / "docker" / "entrypoint.sh").read_text()
