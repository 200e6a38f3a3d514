// The /preview page: draws the avatar's frames (WebSocket + canvas, or MJPEG with ?transport=mjpeg) and drives it.
// Only standard APIs (fetch, WebSocket, createImageBitmap, canvas), so Chromium and Firefox behave the same.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  // Shared with tests and bench/bench_preview.py, which read the counters and the delays.
  const state = {
    transport: params.get("transport") === "mjpeg" ? "mjpeg" : "ws",
    avatar: null, offset: 0, fps: 25, ws: null, frames: 0, arrivals: [], delays: [], lastHeader: null,
    renderer: null, expression: "neutral", busy: false, pending: null, ready: false,
  };
  window.preview = state;

  const wallNow = () => (performance.timeOrigin + performance.now()) / 1000;

  function say(text, isError = false) {
    const el = $("message");
    el.textContent = text;
    el.style.color = isError ? "#f07070" : "";
  }

  async function api(path, options = {}) {
    const response = await fetch(path, options);
    let body;
    try {
      body = await response.json();
    } catch (_err) {
      throw new Error(`${path}: HTTP ${response.status}`);
    }
    if (!response.ok) {  // every bridge error is {"error": {"code", "message"}} with a 4xx/5xx status
      const err = body.error || {};
      throw new Error(`${err.code || response.status}: ${err.message || "error"}`);
    }
    return body;
  }

  function command(body) {
    return api("/preview/api/command", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  }

  async function guarded(action) {
    try {
      return await action();
    } catch (err) {
      say(err.message, true);
      return null;
    }
  }

  // --- the stream ----------------------------------------------------------------------------------------------

  function disconnect() {
    if (state.ws) {
      state.ws.onclose = null;
      state.ws.close();
      state.ws = null;
    }
    $("mjpeg").removeAttribute("src");
  }

  function connect(avatar) {
    disconnect();
    const query = `avatar=${encodeURIComponent(avatar)}`;
    if (state.transport === "mjpeg") {
      $("canvas").hidden = true;
      $("mjpeg").hidden = false;
      $("mjpeg").src = `/preview/stream.mjpeg?${query}`;
    }
    // With MJPEG the <img> shows the frames and this socket brings only their headers, for the figures.
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const jpeg = state.transport === "mjpeg" ? "&jpeg=0" : "";
    const ws = new WebSocket(`${scheme}//${location.host}/preview/ws?${query}${jpeg}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      const data = event.data;
      const length = new DataView(data).getUint32(0);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, length)));
      if (state.transport === "mjpeg") {
        record(header, wallNow());
        return;
      }
      state.pending = { header, blob: new Blob([new Uint8Array(data, 4 + length)], { type: "image/jpeg" }) };
      if (!state.busy) drawNext();
    };
    ws.onclose = () => {
      if (state.ws === ws) setTimeout(() => state.ws === ws && connect(avatar), 1000);
    };
    state.ws = ws;
  }

  // delay: frame ts (engine clock, mapped to Unix time) -> painted (canvas) or arrived (MJPEG's headers).
  function record(header, at) {
    state.delays.push((at - (header.ts + state.offset)) * 1000);
    if (state.delays.length > 250) state.delays.shift();
    state.arrivals.push(performance.now());
    state.frames += 1;
    if (!state.lastHeader || state.lastHeader.expression !== header.expression) {
      state.expressionSince = performance.now();  // when the first frame of this expression was shown
    }
    state.lastHeader = header;
  }

  // Only the newest frame is decoded: frames that arrive while one decodes replace each other (low delay first).
  async function drawNext() {
    const next = state.pending;
    state.pending = null;
    if (!next) return;
    state.busy = true;
    try {
      const bitmap = await createImageBitmap(next.blob);
      const canvas = $("canvas");
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      bitmap.close();
      await new Promise((resolve) => requestAnimationFrame(resolve));
      record(next.header, wallNow());
    } catch (err) {
      say(`frame: ${err.message}`, true);
    } finally {
      state.busy = false;
    }
    if (state.pending) drawNext();
  }

  async function switchAvatar(avatar) {
    const reply = await command({ cmd: "stream", avatar, fps: state.fps });
    const previous = state.avatar;
    state.avatar = reply.avatar;
    state.renderer = reply.renderer;
    if (previous && previous !== reply.avatar) {
      command({ cmd: "stream", avatar: previous, fps: 0 }).catch(() => {});  // stop drawing what nobody sees
    }
    $("fig-avatar").textContent = reply.avatar;
    connect(reply.avatar);
  }

  // --- figures ---------------------------------------------------------------------------------------------------

  function percentile(values, q) {
    if (!values.length) return NaN;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  function showFigures() {
    const now = performance.now();
    while (state.arrivals.length && state.arrivals[0] < now - 1000) state.arrivals.shift();
    const h = state.lastHeader;
    const ws = state.transport === "ws";
    $("fig-transport").textContent = ws ? "WebSocket + canvas" : "MJPEG <img> (+ headers by WebSocket)";
    $("fig-fps").textContent = String(state.arrivals.length);
    $("fig-frames").textContent = String(state.frames);
    if (h) {
      $("fig-render").textContent = Number(h.render_ms).toFixed(1);
      $("fig-late").textContent = String(h.late);
      $("fig-renderer").textContent = h.renderer;
      $("fig-expression").textContent = `${h.expression} ${Number(h.intensity).toFixed(2)}`;
    }
    const d50 = percentile(state.delays.slice(-50), 0.5);
    const d95 = percentile(state.delays.slice(-50), 0.95);
    $("fig-delay").textContent = Number.isNaN(d50) ? "-" : `${d50.toFixed(0)} / ${d95.toFixed(0)}${ws ? "" : " (arrival)"}`;
  }

  // --- controls ------------------------------------------------------------------------------------------------

  function buildExpressions(names) {
    const box = $("expressions");
    for (const name of names) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = name;
      button.dataset.expression = name;
      button.addEventListener("click", () => setExpression(name));
      box.appendChild(button);
    }
  }

  async function setExpression(name) {
    state.expression = name;
    for (const b of $("expressions").children) b.classList.toggle("active", b.dataset.expression === name);
    await guarded(() => command({
      cmd: "set_expression", avatar: state.avatar, expression: name,
      intensity: Number($("intensity").value), transition_ms: 250,
    }));
  }

  // Slider moves are coalesced: at most one set_controls in flight, carrying every value changed meanwhile.
  const changed = {};
  let sending = false;
  async function flushControls() {
    if (sending || !Object.keys(changed).length || !state.avatar) return;
    sending = true;
    const controls = { ...changed };
    for (const k of Object.keys(controls)) delete changed[k];
    await guarded(() => command({ cmd: "set_controls", avatar: state.avatar, controls, transition_ms: 80 }));
    sending = false;
    flushControls();
  }

  function buildControls(controls) {
    const box = $("controls");
    for (const c of controls) {
      const min = Number(c.min);
      const max = Number(c.max);
      const rest = Math.min(max, Math.max(min, 0));
      const label = document.createElement("label");
      label.textContent = c.name;
      label.htmlFor = `control-${c.name}`;
      const input = document.createElement("input");
      Object.assign(input, { type: "range", id: `control-${c.name}`, min, max, step: (max - min) / 100, value: rest });
      input.dataset.control = c.name;
      input.dataset.rest = String(rest);
      const out = document.createElement("output");
      out.textContent = rest.toFixed(2);
      input.addEventListener("input", () => {
        out.textContent = Number(input.value).toFixed(2);
        changed[c.name] = Number(input.value);
        flushControls();
      });
      box.append(label, input, out);
    }
  }

  function wire() {
    $("intensity").addEventListener("input", () => { $("intensity-value").textContent = $("intensity").value; });
    $("intensity").addEventListener("change", () => setExpression(state.expression));
    $("idle").addEventListener("change", () => guarded(
      () => command({ cmd: "set_idle", avatar: state.avatar, enabled: $("idle").checked })));
    $("fps").addEventListener("change", async () => {
      const fps = Number($("fps").value);
      const reply = await guarded(() => command({ cmd: "stream", avatar: state.avatar, fps }));
      if (reply) state.fps = fps;
    });
    $("clear").addEventListener("click", () => {
      for (const input of $("controls").querySelectorAll("input")) {
        input.value = input.dataset.rest;
        input.nextElementSibling.textContent = Number(input.value).toFixed(2);
        changed[input.dataset.control] = Number(input.value);
      }
      flushControls();
    });
    $("portrait").addEventListener("change", async () => {
      const file = $("portrait").files[0];
      if (!file) return;
      say(`detecting the face in ${file.name}...`);
      const reply = await guarded(() => api("/preview/api/source", {
        method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file,
      }));
      if (!reply) return;
      await guarded(() => switchAvatar(reply.avatar));
      say(`avatar ${reply.avatar}: ${reply.faces} face(s), ${reply.width}x${reply.height}`);
    });
    $("speak").addEventListener("click", async () => {
      const file = $("wav").files[0];
      const result = $("speak-result");
      if (!file) {
        result.textContent = "choose a WAV file first";
        return;
      }
      result.textContent = "sending...";
      try {
        const reply = await api(`/preview/api/speak?avatar=${encodeURIComponent(state.avatar)}`, {
          method: "POST", headers: { "Content-Type": "audio/wav" }, body: file,
        });
        result.textContent = `speaking (${JSON.stringify(reply).slice(0, 120)})`;
      } catch (err) {
        result.textContent = err.message;
      }
    });
  }

  async function start() {
    wire();
    let info = null;
    while (!info) {  // the engine may still be starting: keep asking, the page says why it waits
      info = await guarded(() => api("/preview/api/info"));
      if (!info) await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    state.offset = info.clock.offset_s;
    state.fps = Number($("fps").value);
    buildExpressions(info.expressions);
    buildControls(info.controls);
    $("intensity").min = info.intensities.min;
    $("intensity").max = info.intensities.max;
    await guarded(() => switchAvatar(info.default_avatar));
    say(`renderer: ${info.renderer}`);
    state.ready = true;
    setInterval(showFigures, 250);
  }

  start();
})();
