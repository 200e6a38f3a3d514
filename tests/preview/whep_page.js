// A WHEP player written by hand for the tests (no library): recvonly audio + video, the whole offer POSTed once
// ICE gathering is done, the answer applied; getStats sampled into window.samples.
window.whepPlay = async (path) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
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
