// Recording what the bot's page (examples/pipecat_page.html: window.pc, window.video) receives, on one clock
// (performance.now, ms): each displayed frame as 96 x 96 grey at requestVideoFrameCallback's expected display time;
// each received audio packet's level when it was delivered for playout (getSynchronizationSources); the microphone's
// level (what the user says), from the local track through an AnalyserNode every 10 ms.
const REC_SIZE = 96;
window.recStart = () => {
  const rec = {video: [], audio: [], mic: [], seen: new Set(), stop: false};
  const receiver = window.pc.getReceivers().find((r) => r.track && r.track.kind === "audio");
  rec.poll = setInterval(() => {
    for (const s of receiver.getSynchronizationSources()) {
      if (rec.seen.has(s.rtpTimestamp)) continue;
      rec.seen.add(s.rtpTimestamp);
      rec.audio.push([s.timestamp - performance.timeOrigin, s.audioLevel || 0]);
    }
  }, 4);
  const sender = window.pc.getSenders().find((s) => s.track && s.track.kind === "audio");
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream([sender.track])).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  rec.micPoll = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let e = 0;
    for (const v of buf) e += v * v;
    rec.mic.push([performance.now(), Math.sqrt(e / buf.length)]);
  }, 10);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = REC_SIZE;
  const g = canvas.getContext("2d", {willReadFrequently: true});
  const onFrame = (now, meta) => {
    if (rec.stop) return;
    g.drawImage(window.video, 0, 0, REC_SIZE, REC_SIZE);
    const px = g.getImageData(0, 0, REC_SIZE, REC_SIZE).data;
    let grey = "";
    for (let i = 0; i < px.length; i += 4) {
      grey += String.fromCharCode(Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]));
    }
    rec.video.push([meta.expectedDisplayTime, btoa(grey)]);
    window.video.requestVideoFrameCallback(onFrame);
  };
  window.video.requestVideoFrameCallback(onFrame);
  window.rec = rec;
};

window.recStop = () => {
  const rec = window.rec;
  rec.stop = true;
  clearInterval(rec.poll);
  clearInterval(rec.micPoll);
  return {video: rec.video, audio: rec.audio, mic: rec.mic, origin: performance.timeOrigin};
};
