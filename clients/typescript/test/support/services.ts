/**
 * A real engine and bridge for the tests, started as production starts them (python -m engine, python -m bridge)
 * on free loopback ports. LP_PYTHON picks the interpreter (default: the repository's .venv).
 */

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { EngineClient, LivePortraitError, type CurveClientKeys } from "../../src/index.js";

/** clients/typescript (this file runs as dist/test/support/services.js). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const REPO_ROOT = resolve(PACKAGE_ROOT, "..", "..");
export const DATA = join(REPO_ROOT, "tests", "data");
/** The interpreter that runs the engine and the bridge. */
export const PYTHON = process.env.LP_PYTHON ?? join(REPO_ROOT, ".venv", "bin", "python");

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => ok(port));
    });
  });
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").slice(-3000);
  } catch {
    return "(no log)";
  }
}

const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

export class Services {
  commandAddress = "";
  frameAddress = "";
  bridgeUrl = "";
  private readonly dir = mkdtempSync(join(tmpdir(), "lp-ts-"));
  private readonly procs: ChildProcess[] = [];

  /** A folder of this harness's own, removed with the OS's temp files. */
  get tmp(): string {
    return this.dir;
  }

  private pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PYTHONPATH: [REPO_ROOT, process.env.PYTHONPATH].filter(Boolean).join(":"),
      LP_MODELS_DIR: join(this.dir, "models"), // empty: the offline renderer, as in CI
      ...extra,
    };
  }

  /** `python args...` to completion (e.g. `-m engine.security generate DIR`); its stdout. */
  runPython(args: string[]): string {
    return execFileSync(PYTHON, args, { cwd: REPO_ROOT, env: this.pythonEnv(), encoding: "utf8" });
  }

  private spawnPython(name: string, args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
    const python = PYTHON;
    const log = join(this.dir, `${name}.log`);
    const out = createWriteStream(log);
    const env = this.pythonEnv(extraEnv);
    const proc = spawn(python, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout?.pipe(out);
    proc.stderr?.pipe(out);
    proc.on("error", (err) => out.write(`spawn ${python} failed: ${String(err)}\n`));
    this.procs.push(proc);
    return proc;
  }

  async start(): Promise<void> {
    await this.startEngine();
    this.bridgeUrl = await this.startBridge(this.commandAddress);
  }

  /** The engine alone, with extra environment (e.g. LP_CURVE_KEYS_DIR) and the keys to reach it with. */
  async startEngine(env: Record<string, string> = {}, curve: CurveClientKeys | null = null): Promise<void> {
    this.commandAddress = `tcp://127.0.0.1:${await freePort()}`;
    this.frameAddress = `tcp://127.0.0.1:${await freePort()}`;
    const engine = this.spawnPython("engine",
      ["-m", "engine", "--command-addr", this.commandAddress, "--frame-addr", this.frameAddress], env);
    await this.waitEngine(engine, 180_000, curve);
  }

  /** A bridge in front of `engineAddress` (any address: a dead one gives the bridge's 503s); resolves to its URL. */
  async startBridge(engineAddress: string, extraArgs: string[] = [], name = "bridge"): Promise<string> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const bridge = this.spawnPython(name,
      ["-m", "bridge", "--port", String(port), "--engine-addr", engineAddress, ...extraArgs]);
    await this.waitBridge(bridge, url, name, 60_000);
    return url;
  }

  private async waitEngine(proc: ChildProcess, timeoutMs: number, curve: CurveClientKeys | null): Promise<void> {
    const client = new EngineClient({ commandAddress: this.commandAddress, timeoutMs: 1000, retries: 0, curve });
    const deadline = Date.now() + timeoutMs;
    try {
      while (Date.now() < deadline) {
        if (proc.exitCode !== null) throw new Error(`engine exited ${proc.exitCode}:\n${tail(join(this.dir, "engine.log"))}`);
        try {
          const health = await client.health();
          if (health.status === "ok") return;
          if (health.status === "failed") throw new Error(`engine failed: ${JSON.stringify(health.failure)}`);
        } catch (err) {
          if (!(err instanceof LivePortraitError)) throw err;
        }
        await sleep(200);
      }
      throw new Error(`engine not ready in ${timeoutMs} ms:\n${tail(join(this.dir, "engine.log"))}`);
    } finally {
      client.close();
    }
  }

  private async waitBridge(proc: ChildProcess, url: string, name: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`${name} exited ${proc.exitCode}:\n${tail(join(this.dir, `${name}.log`))}`);
      try {
        const response = await fetch(`${url}/expressions`, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    throw new Error(`${name} not ready in ${timeoutMs} ms:\n${tail(join(this.dir, `${name}.log`))}`);
  }

  /** SIGTERM, then SIGKILL after 15 s: the processes this harness started, by their own handles. */
  async stop(): Promise<void> {
    await Promise.all(this.procs.reverse().map((proc) => new Promise<void>((ok) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return ok();
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      proc.once("exit", () => {
        clearTimeout(timer);
        ok();
      });
      proc.kill("SIGTERM");
    })));
  }

  logs(): string {
    return `engine:\n${tail(join(this.dir, "engine.log"))}\nbridge:\n${tail(join(this.dir, "bridge.log"))}`;
  }
}
