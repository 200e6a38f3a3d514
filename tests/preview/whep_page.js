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

// The browser's own A/V estimate (inbound-rtp estimatedPlayoutTimestamp, audio minus video, from the sender
// reports): True once it has stayed within tolMs for the last n samples (its sync has converged); the series itself.
window.avSettled = (tolMs = 25, n = 10) => {
  const last = window.samples.slice(-n);
  return last.length === n && last.every((s) => s.audioPlayout && s.videoPlayout &&
                                                Math.abs(s.audioPlayout - s.videoPlayout) < tolMs);
};

window.avEstimate = () => window.samples.filter((x) => x.audioPlayout && x.videoPlayout)
  .map((x) => [x.t, x.audioPlayout - x.videoPlayout]);
