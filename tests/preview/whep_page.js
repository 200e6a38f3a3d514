// A WHEP player written by hand for the tests (no library): recvonly audio + video, the whole offer POSTed once
// ICE gathering is done, the answer applied; getStats sampled into window.samples.
window.whepPlay = async (path, jitterMs = 0) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  // A floor under both jitter buffers: on a loaded machine the audio one starts deep and then shrinks, and the
  // browser's A/V sync follows it seconds late; a steady floor gives it a steady target.
  if (jitterMs) for (const r of pc.getReceivers()) r.jitterBufferTarget = jitterMs;
  const stream = new MediaStream();
  pc.ontrack = (ev) => stream.addTrack(ev.track);
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise((ok) => {
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
      setTimeout(ok, 3000);
    });
  }
  const res = await fetch(path, {method: "POST", headers: {"Content-Type": "application/sdp"},
                                 body: pc.localDescription.sdp});
  if (res.status !== 201) return {status: res.status, body: await res.text()};
  await pc.setRemoteDescription({type: "answer", sdp: await res.text()});
  const video = document.createElement("video");
  video.autoplay = true; video.playsInline = true; video.muted = false;
  video.srcObject = stream;
  document.body.appendChild(video);
  video.play().catch(() => {});
  window.pc = pc; window.stream = stream; window.video = video; window.samples = [];
  window.sampler = setInterval(async () => {
    const s = {t: performance.now(), state: pc.connectionState};
    (await pc.getStats()).forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if (r.kind === "video") Object.assign(s, {framesDecoded: r.framesDecoded, fps: r.framesPerSecond,
                                                width: r.frameWidth, videoPlayout: r.estimatedPlayoutTimestamp,
                                                codec: r.codecId});
      if (r.kind === "audio") Object.assign(s, {audioLevel: r.audioLevel, audioEnergy: r.totalAudioEnergy,
                                                samples: r.totalSamplesReceived,
                                                audioPlayout: r.estimatedPlayoutTimestamp});
    });
    window.samples.push(s);
  }, 100);
  return {status: res.status, location: res.headers.get("Location"),
          tracks: stream.getTracks().map((t) => t.kind).sort()};
};

// One quick viewer: connect, wait (at most 5 s) until connected, DELETE at once, close. Returns the state it
// reached. Quick ones end while aiortc is still starting the bundled transports.
window.whepCycle = async (path = "/whep") => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === "complete") ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
    setTimeout(ok, 2000);
  });
  const res = await fetch(path, {method: "POST", headers: {"Content-Type": "application/sdp"},
                                 body: pc.localDescription.sdp});
  if (res.status !== 201) return String(res.status);
  await pc.setRemoteDescription({type: "answer", sdp: await res.text()});
  await new Promise((ok) => {
    pc.onconnectionstatechange = () => pc.connectionState === "connected" && ok();
    setTimeout(ok, 5000);
  });
  const state = pc.connectionState;
  await fetch(res.headers.get("Location"), {method: "DELETE"});
  pc.close();
  return state;
};

// What the viewer sees and hears, on one clock (performance.now, ms): each displayed frame, grey, 128 x 128 (the
// analysis finds the mouth: the only part that moves with idle life off), at requestVideoFrameCallback's expected display time;
// and each audio packet's level at the time it was delivered to the track for playout (getSynchronizationSources:
// its timestamp, RTP timestamp and audioLevel; polled every 4 ms, one row per packet).
const SYNC_SIZE = 128;
// True once the browser's own A/V estimate (inbound-rtp estimatedPlayoutTimestamp, audio minus video, from the
// sender reports) has stayed within tolMs for the last n samples: its sync has converged.
window.avSettled = (tolMs = 25, n = 10) => {
  const last = window.samples.slice(-n);
  return last.length === n && last.every((s) => s.audioPlayout && s.videoPlayout &&
                                                Math.abs(s.audioPlayout - s.videoPlayout) < tolMs);
};

window.syncStart = async () => {
  const rec = {audio: [], video: [], stop: false, seen: new Set()};
  const receiver = window.pc.getReceivers().find((r) => r.track.kind === "audio");
  rec.poll = setInterval(() => {
    for (const s of receiver.getSynchronizationSources()) {
      if (rec.seen.has(s.rtpTimestamp)) continue;
      rec.seen.add(s.rtpTimestamp);
      rec.audio.push([s.timestamp - performance.timeOrigin, s.rtpTimestamp, s.audioLevel || 0]);
    }
  }, 4);
  const canvas = document.createElement("canvas"); canvas.width = canvas.height = SYNC_SIZE;
  const g = canvas.getContext("2d", {willReadFrequently: true});
  const onFrame = (now, meta) => {
    if (rec.stop) return;
    g.drawImage(window.video, 0, 0, SYNC_SIZE, SYNC_SIZE);
    const px = g.getImageData(0, 0, SYNC_SIZE, SYNC_SIZE).data;
    let gray = "";
    for (let i = 0; i < px.length; i += 4) {
      gray += String.fromCharCode(Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]));
    }
    rec.video.push([meta.expectedDisplayTime, btoa(gray)]);
    window.video.requestVideoFrameCallback(onFrame);
  };
  window.video.requestVideoFrameCallback(onFrame);
  window.rec = rec;
};

window.syncStop = () => {
  const rec = window.rec;
  rec.stop = true; clearInterval(rec.poll);
  const estimate = window.samples.filter((x) => x.audioPlayout && x.videoPlayout)
    .map((x) => [x.t, x.audioPlayout - x.videoPlayout]);
  return {video: rec.video, audio: rec.audio, estimate};
};
