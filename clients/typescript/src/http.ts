/**
 * The seed's HTTP renderer, kept as a drop-in: `render({sourceImage, expression, intensity})` posts multipart to
 * the bridge's POST /api/render and resolves to the JPEG. Refusals become BridgeError with the JSON body's code.
 */

import { BridgeError, LivePortraitError } from "./errors.js";
import type { Expression } from "./types.js";

export const DEFAULT_BRIDGE_URL = "http://127.0.0.1:8081";

export interface RenderParams {
  /** The portrait: JPEG or PNG bytes. */
  sourceImage: Buffer | Uint8Array | ArrayBuffer | Blob;
  expression: Expression;
  /** 0.0-1.0; the bridge's default is 1.0. */
  intensity?: number;
}

export interface LivePortraitRendererOptions {
  /** The bridge, e.g. http://127.0.0.1:8081 (LP_BRIDGE_PORT). */
  baseUrl?: string;
  /** Abort a request after this long; the bridge itself gives the engine 20 s. */
  timeoutMs?: number;
}

/** What the bridge says about one render, from its response headers. */
export interface RenderInfo {
  jpeg: Buffer;
  renderer: string | null;
  cache: string | null;
  renderMs: number | null;
  /** The avatar id the engine keeps for this portrait (X-Avatar). */
  avatar: string | null;
}

export class LivePortraitRenderer {
  readonly baseUrl: string;
  readonly timeoutMs: number;

  constructor(options: LivePortraitRendererOptions | string = {}) {
    const opts = typeof options === "string" ? { baseUrl: options } : options;
    this.baseUrl = (opts.baseUrl ?? DEFAULT_BRIDGE_URL).replace(/\/+$/, "");
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** The rendered face as JPEG bytes. */
  async render(params: RenderParams): Promise<Buffer> {
    return (await this.renderWithInfo(params)).jpeg;
  }

  async renderWithInfo({ sourceImage, expression, intensity }: RenderParams): Promise<RenderInfo> {
    const form = new FormData();
    const blob = sourceImage instanceof Blob ? sourceImage : toBlob(sourceImage);
    form.append("source_image", blob, blob.type === "image/png" ? "source.png" : "source.jpg");
    form.append("expression", expression);
    if (intensity !== undefined) form.append("intensity", String(intensity));
    const response = await this.fetch("/api/render", { method: "POST", body: form });
    const body = Buffer.from(await response.arrayBuffer());
    const renderMs = response.headers.get("x-render-ms");
    return {
      jpeg: body,
      renderer: response.headers.get("x-renderer"),
      cache: response.headers.get("x-cache"),
      renderMs: renderMs === null ? null : Number(renderMs),
      avatar: response.headers.get("x-avatar"),
    };
  }

  /** `{expressions, intensities}` from GET /expressions. */
  async expressions(): Promise<{ expressions: Expression[]; intensities: { min: number; max: number } }> {
    return (await this.fetch("/expressions", { method: "GET" })).json() as Promise<{
      expressions: Expression[];
      intensities: { min: number; max: number };
    }>;
  }

  /** True when GET /health answers 200 (the bridge reaches the engine). */
  async healthy(): Promise<boolean> {
    try {
      await this.fetch("/health", { method: "GET" });
      return true;
    } catch (err) {
      if (err instanceof LivePortraitError) return false;
      throw err;
    }
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + path, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (cause) {
      const name = (cause as { name?: string }).name;
      if (name === "TimeoutError" || name === "AbortError") {
        throw new LivePortraitError("timeout", `no answer from ${this.baseUrl}${path} within ${this.timeoutMs} ms`,
          { cause });
      }
      throw new LivePortraitError("unreachable", `cannot reach ${this.baseUrl}${path}: ${String(cause)}`, { cause });
    }
    if (response.ok) return response;
    throw await bridgeError(response);
  }
}

async function bridgeError(response: Response): Promise<BridgeError> {
  const retry = response.headers.get("retry-after");
  const retryAfter = retry === null || Number.isNaN(Number(retry)) ? undefined : Number(retry);
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown }; reason?: unknown };
    if (body.error && typeof body.error === "object") {
      return new BridgeError(response.status, String(body.error.code ?? "http_error"),
        String(body.error.message ?? response.statusText), retryAfter);
    }
    if (body.reason !== undefined) {
      return new BridgeError(response.status, "unavailable", String(body.reason), retryAfter);
    }
  } catch {
    // not JSON: fall through to the status line
  }
  return new BridgeError(response.status, "http_error", `${response.status} ${response.statusText}: ${text.slice(0, 200)}`,
    retryAfter);
}

/** The part's type from the magic bytes (the bridge checks the bytes themselves; the type is for proxies and logs). */
function toBlob(bytes: Buffer | Uint8Array | ArrayBuffer): Blob {
  const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  const copy = new Uint8Array(view.byteLength);
  copy.set(view);
  const png = copy[0] === 0x89 && copy[1] === 0x50 && copy[2] === 0x4e && copy[3] === 0x47;
  const jpeg = copy[0] === 0xff && copy[1] === 0xd8;
  return new Blob([copy.buffer], { type: png ? "image/png" : jpeg ? "image/jpeg" : "application/octet-stream" });
}
