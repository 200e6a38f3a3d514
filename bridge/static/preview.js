// The /preview page: plays the avatar's face and voice by WebRTC (WHEP, the default), or draws its frames from the
// WebSocket (?transport=ws, and the fallback when WebRTC does not connect) or MJPEG (?transport=mjpeg); drives it.
// Only standard APIs (fetch, RTCPeerConnection, WebSocket, createImageBitmap, canvas).
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  // Shared with tests and bench/bench_preview.py, which read the counters and the delays.
  const state = {
    transport: ["mjpeg", "ws"].includes(params.get("transport")) ? params.get("transport") : "webrtc",
    pc: null, whep: null, av: [], whepDelayMs: 0,
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
    stopWhep();
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
    $("canvas").hidden = state.transport !== "ws";
    $("mjpeg").hidden = state.transport !== "mjpeg";
    $("video").hidden = state.transport !== "webrtc";
    if (state.transport === "mjpeg") $("mjpeg").src = `/preview/stream.mjpeg?${query}`;
    if (state.transport === "webrtc") startWhep(avatar);
    // With MJPEG or WebRTC the picture comes another way and this socket brings only the headers, for the figures.
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const jpeg = state.transport !== "ws" ? "&jpeg=0" : "";
    const ws = new WebSocket(`${scheme}//${location.host}/preview/ws?${query}${jpeg}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      const data = event.data;
      const length = new DataView(data).getUint32(0);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, length)));
      if (state.transport !== "ws") {
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

  // --- WebRTC (WHEP): one POST of the offer, the answer back, DELETE on leaving ---------------------------------

  const JITTER_MS = Number(params.get("jitter") || 150);  // a floor under both jitter buffers: a steady A/V sync
  const WHEP_CONNECT_MS = 8000;  // no picture by then: fall back to the WebSocket

  function fallBack(why) {
    if (state.transport !== "webrtc") return;
    say(`WebRTC: ${why}; showing the WebSocket stream (no sound)`, true);
    state.transport = "ws";
    state.fallback = why;
    if (state.avatar) connect(state.avatar);
  }

  function stopWhep() {
    if (state.pc) {
      state.pc.onconnectionstatechange = null;
      state.pc.close();
      state.pc = null;
    }
    if (state.whep) {
      fetch(state.whep, { method: "DELETE", keepalive: true }).catch(() => {});
      state.whep = null;
    }
    clearTimeout(state.whepTimer);
  }

  async function startWhep(avatar) {
    if (typeof RTCPeerConnection === "undefined") return fallBack("not in this browser");
    const pc = new RTCPeerConnection();
    state.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    for (const r of pc.getReceivers()) if ("jitterBufferTarget" in r) r.jitterBufferTarget = JITTER_MS;
    const stream = new MediaStream();
    pc.ontrack = (ev) => stream.addTrack(ev.track);
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") fallBack("the connection failed");
    };
    state.whepTimer = setTimeout(() => { if (!($("video").readyState >= 2)) fallBack("no picture"); },
      WHEP_CONNECT_MS);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      if (pc.iceGatheringState !== "complete") {  // no trickle ICE: the offer carries every candidate
        await new Promise((ok) => {
          pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && ok());
          setTimeout(ok, 2000);
        });
      }
      const res = await fetch(`/whep/${encodeURIComponent(avatar)}`, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
      });
      if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 160)}`);
      if (state.pc !== pc) return;
      state.whep = res.headers.get("Location");
      state.whepDelayMs = Number(res.headers.get("X-Playout-Delay-Ms") || 0);
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (err) {
      if (state.pc === pc) fallBack(err.message);
      return;
    }
    const video = $("video");
    video.srcObject = stream;
    video.muted = true;  // browsers play sound only after a click: the button below
    video.play().catch(() => {});
    $("unmute").hidden = false;
  }

  // A/V offset and delay from the browser's own estimates (Chromium: inbound-rtp estimatedPlayoutTimestamp, the
  // sender's NTP time of what plays now). The bridge sends media of engine time t at t + its playout delay, so
  // glass-to-glass = now - (what the video plays now) + that delay. offset > 0: the voice is ahead of the face.
  async function sampleWhep() {
    const pc = state.pc;
    if (!pc || pc.connectionState !== "connected") return;
    const playing = {};
    const codecs = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.estimatedPlayoutTimestamp) playing[r.kind] = r.estimatedPlayoutTimestamp;
      if (r.type === "codec") codecs.push(r.mimeType);
    });
    state.codecs = codecs.sort().reverse().map((m) => m.split("/")[1]).join(" + ");  // video first
    if (playing.video === undefined) return;
    const NTP_UNIX_MS = 2208988800000;
    state.delays.push(Date.now() - (playing.video - NTP_UNIX_MS) + state.whepDelayMs);
    if (state.delays.length > 250) state.delays.shift();
    if (playing.audio !== undefined) {
      state.av.push(playing.audio - playing.video);
      if (state.av.length > 40) state.av.shift();
    }
  }

  // delay: frame ts (engine clock, mapped to Unix time) -> painted (canvas) or arrived (MJPEG's headers).
  function record(header, at) {
    if (state.transport !== "webrtc") {  // WebRTC's delay is the browser's own figure (sampleWhep)
      state.delays.push((at - (header.ts + state.offset)) * 1000);
      if (state.delays.length > 250) state.delays.shift();
    }
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
    $("fig-transport").textContent = {
      ws: state.fallback ? `WebSocket + canvas (WebRTC: ${state.fallback})` : "WebSocket + canvas", mjpeg: "MJPEG <img> (+ headers by WebSocket)",
      webrtc: `WebRTC (WHEP): ${state.codecs || "..."} (+ headers by WebSocket)` }[state.transport];
    const av = percentile(state.av.slice(-20), 0.5);
    $("fig-av").textContent = state.transport === "webrtc" && !Number.isNaN(av) ? av.toFixed(0) : "-";
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
    const how = { ws: "", mjpeg: " (arrival)", webrtc: " (glass to glass)" }[state.transport];
    $("fig-delay").textContent = Number.isNaN(d50) ? "-" : `${d50.toFixed(0)} / ${d95.toFixed(0)}${how}`;
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

  // --- the conversation: turn state, the user's microphone (user_audio), barge-in ---------------------------------

  const MIC_RATE = 16000;  // the page sends 16 kHz int16 mono PCM ...
  const MIC_CHUNK = 1600;  // ... in 100 ms chunks, one command each, in order
  const mic = { stream: null, ctx: null, node: null, chunk: new Int16Array(MIC_CHUNK), fill: 0, phase: 0,
    sending: Promise.resolve(), sent: 0 };
  state.mic = mic;

  function showTurn(turn) {
    if (!turn) return;
    state.turn = turn;
    $("turn-result").textContent = turn;
    if (document.activeElement !== $("turn")) $("turn").value = turn;
  }

  function base64(int16) {
    const bytes = new Uint8Array(int16.buffer, int16.byteOffset, int16.byteLength);
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }

  function sendChunk(chunk) {
    const body = { cmd: "user_audio", avatar: state.avatar, audio: base64(chunk), sample_rate: MIC_RATE,
      interrupt: $("interrupt").checked };
    mic.sending = mic.sending.then(() => command(body)).then(
      (reply) => { mic.sent += 1; showTurn(reply.turn); }, (err) => say(err.message, true));
  }

  function hear(input, rate) {
    // the context's rate -> 16 kHz by linear interpolation, the fractional position carried across buffers
    const step = rate / MIC_RATE;
    let pos = mic.phase;
    for (; pos < input.length; pos += step) {
      const i = Math.floor(pos);
      const next = i + 1 < input.length ? input[i + 1] : input[i];
      const value = input[i] + (next - input[i]) * (pos - i);
      mic.chunk[mic.fill++] = Math.max(-32768, Math.min(32767, Math.round(value * 32767)));
      if (mic.fill === MIC_CHUNK) {
        sendChunk(mic.chunk);
        mic.chunk = new Int16Array(MIC_CHUNK);
        mic.fill = 0;
      }
    }
    mic.phase = pos - input.length;
  }

  async function startTalking() {
    mic.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    mic.ctx = new AudioContext();
    const source = mic.ctx.createMediaStreamSource(mic.stream);
    mic.node = mic.ctx.createScriptProcessor(2048, 1, 1);  // plain and everywhere; nothing is played back
    mic.node.onaudioprocess = (event) => hear(event.inputBuffer.getChannelData(0), mic.ctx.sampleRate);
    source.connect(mic.node);
    mic.node.connect(mic.ctx.destination);
    $("talk").setAttribute("aria-pressed", "true");
    $("talk").textContent = "stop talking";
  }

  function stopTalking() {
    if (mic.node) mic.node.onaudioprocess = null;
    if (mic.stream) for (const track of mic.stream.getTracks()) track.stop();
    if (mic.ctx) mic.ctx.close().catch(() => {});
    mic.stream = mic.ctx = mic.node = null;
    mic.fill = 0;
    $("talk").setAttribute("aria-pressed", "false");
    $("talk").textContent = "user talks (microphone)";
  }

  async function pollTurn() {
    if (!state.avatar) return;
    const stats = await api(`/preview/api/stats?avatar=${encodeURIComponent(state.avatar)}`);
    showTurn(stats.turn);
  }

  function wire() {
    $("turn").addEventListener("change", async () => {
      const reply = await guarded(() => command({ cmd: "set_turn", avatar: state.avatar, state: $("turn").value }));
      if (reply) showTurn(reply.turn);
    });
    $("talk").addEventListener("click", () => guarded(async () => {
      if (mic.stream) stopTalking();
      else await startTalking();
    }));
    $("barge-in").addEventListener("click", async () => {
      const reply = await guarded(() => command({ cmd: "clear", avatar: state.avatar }));
      if (reply) showTurn(reply.turn);
    });
    window.addEventListener("pagehide", stopTalking);
    $("unmute").addEventListener("click", () => {
      $("video").muted = false;
      $("video").play().catch(() => {});
      $("unmute").hidden = true;
    });
    window.addEventListener("pagehide", stopWhep);  // DELETE the session when the tab goes
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
    setInterval(() => sampleWhep().catch(() => {}), 250);
    setInterval(() => pollTurn().catch(() => {}), 1000);  // the turn also changes by itself (speak, user talk)
  }

  start();
})();
