// What a test page's peer connection (window.pc, window.video) delivers, on one clock (performance.now, ms). Shared by
// the bot's page (tests/pipecat) and the WHEP player (tests/preview):
// - each displayed frame as size x size grey (base64), at requestVideoFrameCallback's expected display time;
// - each received audio packet once, when it was delivered for playout (getSynchronizationSources, polled every
//   4 ms): [time, RTP timestamp, audioLevel];
// - with `mic`, the page's own microphone track (what the user says) through an AnalyserNode every 10 ms: [time, rms].
window.avRecord = (size, mic = false) => {
  const rec = {video: [], audio: [], mic: [], seen: new Set(), stop: false, timers: []};
  const receiver = window.pc.getReceivers().find((r) => r.track && r.track.kind === "audio");
  rec.timers.push(setInterval(() => {
    for (const s of receiver.getSynchronizationSources()) {
      if (rec.seen.has(s.rtpTimestamp)) continue;
      rec.seen.add(s.rtpTimestamp);
      rec.audio.push([s.timestamp - performance.timeOrigin, s.rtpTimestamp, s.audioLevel || 0]);
    }
  }, 4));
  if (mic) {
    const sender = window.pc.getSenders().find((s) => s.track && s.track.kind === "audio");
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    ctx.createMediaStreamSource(new MediaStream([sender.track])).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    rec.timers.push(setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let e = 0;
      for (const v of buf) e += v * v;
      rec.mic.push([performance.now(), Math.sqrt(e / buf.length)]);
    }, 10));
  }
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const g = canvas.getContext("2d", {willReadFrequently: true});
  const onFrame = (now, meta) => {
    if (rec.stop) return;
    g.drawImage(window.video, 0, 0, size, size);
    const px = g.getImageData(0, 0, size, size).data;
    let grey = "";
    for (let i = 0; i < px.length; i += 4) {
      grey += String.fromCharCode(Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]));
    }
    rec.video.push([meta.expectedDisplayTime, btoa(grey)]);
    window.video.requestVideoFrameCallback(onFrame);
  };
  window.video.requestVideoFrameCallback(onFrame);
  window.avRec = rec;
};

window.avStop = () => {
  const rec = window.avRec;
  rec.stop = true;
  rec.timers.forEach(clearInterval);
  return {video: rec.video, audio: rec.audio, mic: rec.mic, origin: performance.timeOrigin};
};
