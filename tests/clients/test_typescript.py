"""The TypeScript client's own tests (node --test) against a real engine and bridge, run from pytest so CI runs them.

The Node tests start the engine and the bridge themselves with LP_PYTHON (this interpreter), on free loopback ports.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
NODE_MAJORS = (20, 22)  # the LTS lines the package promises its consumers
NODE_CACHE = ROOT / ".cache" / "node"  # git-ignored

pytestmark = pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                reason="node and npm are not installed (Debian: apt-get install nodejs npm)")


def npm(*args: str, timeout: float) -> None:
    """Run one npm command in the package; a failure shows npm's own output, which is what says what broke."""
    env = {**os.environ, "LP_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(["npm", *args], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-12000:]}\n{proc.stderr[-6000:]}",
                    pytrace=False)


def installed() -> bool:
    """node_modules matches package-lock.json (npm writes its own copy of the lock into node_modules)."""
    marker = PACKAGE / "node_modules" / ".package-lock.json"
    return marker.is_file() and marker.stat().st_mtime >= (PACKAGE / "package-lock.json").stat().st_mtime


@pytest.mark.timeout(900)
def test_typescript_client_against_real_engine() -> None:
    if not installed():
        npm("ci", "--no-audit", "--no-fund", timeout=600)
    npm("run", "build", timeout=300)
    npm("test", timeout=600)


# One consumer program, loaded both ways; each kind of module passes in where it resolved the package to.
RENDER = """\
async function main(resolved) {
  const client = new EngineClient({ commandAddress: process.argv[2], timeoutMs: 60000 });
  try {
    const health = await client.health();
    const reply = await client.render({ avatar: "default", expression: "happy", output: "crop" });
    const refused = await client.setExpression("default", "angry").catch((err) => err);
    assert.ok(refused instanceof EngineError && refused instanceof LivePortraitError);
    console.log(JSON.stringify({ resolved, status: health.status, header: reply.header,
      jpeg: reply.jpeg.toString("base64"), refused: refused.code }));
  } finally {
    client.close();
  }
}
"""

CJS_CONSUMER = """\
const assert = require("node:assert/strict");
const { EngineClient, EngineError, LivePortraitError } = require("@secretary/liveportrait-client");
""" + RENDER + """
main(require.resolve("@secretary/liveportrait-client")).catch((err) => { console.error(err); process.exit(1); });
"""

ESM_CONSUMER = """\
import assert from "node:assert/strict";
import { EngineClient, EngineError, LivePortraitError } from "@secretary/liveportrait-client";
""" + RENDER + """
await main(import.meta.resolve("@secretary/liveportrait-client"));
"""

# TypeScript consumers of both kinds: the `types` of each condition must resolve (a CommonJS project's `import`
# compiles to require() and reads the require condition's declarations).
TS_CONSUMER = """\
import { EngineClient, type RenderReply } from "@secretary/liveportrait-client";

export async function draw(address: string): Promise<RenderReply> {
  const client = new EngineClient({ commandAddress: address });
  try {
    return await client.render({ avatar: "default" });
  } finally {
    client.close();
  }
}
"""


def run(cmd: list[str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if not k.startswith("LP_CURVE_")})
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}",
                    pytrace=False)
    return proc.stdout


def node_of_major(major: int) -> str:
    """A `node` of this major line: the system's when it is one, else the official build that the npm registry
    carries as the `node-linux-<arch>` package (Debian ships one line; the registry is reachable where npm is)."""
    system = shutil.which("node")
    if system and run([system, "--version"], ROOT, 30).strip().lstrip("v").split(".")[0] == str(major):
        return system
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    prefix = NODE_CACHE / str(major)
    binary = prefix / "node_modules" / f"node-linux-{arch}" / "bin" / "node"
    if not binary.is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix),
             f"node-linux-{arch}@{major}"], prefix, 600)
    assert run([str(binary), "--version"], ROOT, 30).startswith(f"v{major}."), binary
    return str(binary)


@pytest.mark.timeout(900)
def test_the_packed_package_renders_from_commonjs_and_esm_consumers(tmp_path: Path) -> None:
    """npm pack, installed into a fresh `npm init -y` project: require() and import each render a frame, on Node 20
    and on Node 22."""
    import base64
    import json

    from engine.codec import decode_jpeg
    from tests.service.conftest import EngineProcess

    # the engine starts while npm packs, installs and type-checks (one core each): it is ready when they are done
    engine = EngineProcess(tmp_path, env={"LP_WARMUP": "0"}).start(wait=False)
    try:
        if not installed():
            npm("ci", "--no-audit", "--no-fund", timeout=600)
        run(["npm", "pack", "--pack-destination", str(tmp_path)], PACKAGE, 600)  # prepack builds both outputs
        (tarball,) = tmp_path.glob("secretary-liveportrait-client-*.tgz")
        consumer = tmp_path / "consumer"
        consumer.mkdir()
        run(["npm", "init", "-y"], consumer, 60)
        assert json.loads((consumer / "package.json").read_text()).get("type", "commonjs") == "commonjs"  # npm init -y
        run(["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", str(tarball)], consumer, 600)
        (consumer / "render.js").write_text(CJS_CONSUMER)
        (consumer / "render.mjs").write_text(ESM_CONSUMER)
        (consumer / "draw.cts").write_text(TS_CONSUMER)
        (consumer / "draw.mts").write_text(TS_CONSUMER)
        tsc = PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"
        run(["node", str(tsc), "--noEmit", "--strict", "--skipLibCheck", "--module", "node16", "--moduleResolution",
             "node16", "--typeRoots", str(PACKAGE / "node_modules" / "@types"), "--types", "node", "draw.cts",
             "draw.mts"], consumer, 300)

        nodes = [node_of_major(major) for major in NODE_MAJORS]
        engine.wait_ready()
        for node in nodes:
            for script, build in (("render.js", "dist/cjs/index.js"), ("render.mjs", "dist/src/index.js")):
                out = json.loads(run([node, script, engine.command_addr], consumer, 120).strip().splitlines()[-1])
                assert out["resolved"].endswith(f"node_modules/@secretary/liveportrait-client/{build}"), out
                assert out["status"] == "ok" and out["refused"] == "bad_request"
                frame = decode_jpeg(base64.b64decode(out["jpeg"]))
                assert frame.shape == (512, 512, 3) and out["header"]["expression"] == "happy", (node, script, out)
    finally:
        assert engine.stop() == 0
