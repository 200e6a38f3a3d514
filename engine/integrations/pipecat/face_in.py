"""The face half of LivePortraitVideoService: frames from the PUB socket out as OutputImageRawFrames, each with the
held voice of its engine time. A mixin of the service (service.py's ``__init__`` makes the state)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import simplejpeg
from PIL import Image
from pipecat.frames.frames import OutputImageRawFrame, TTSAudioRawFrame

from engine.client import EngineClientError
from engine.client import Frame as EngineFrame

MAX_HOLD_S = 1.0  # a frame waits at most this long for its voice to leave the transport
DELAY_ALPHA = 0.1  # EWMA weight of the measured face delay (used only when frames stop coming)


class FaceIn:
    """One task reads the avatar's frames; the frame of engine time ``ts`` takes the voice of ``[.., ts + 1/fps)``."""

    async def _media_loop(self) -> None:
        assert self._sub is not None
        period = 1.0 / self._fps
        while True:
            try:
                frame = await self._sub.recv_latest(timeout_ms=int(3000 * period))
            except EngineClientError as exc:  # a malformed frame: skip it
                await self._report(exc, "bad frame skipped")
                continue
            if frame is None:  # no face for a while: the voice must not wait for it
                await self._release(self.engine_now() - self._face_delay)
                continue
            arrived = self.engine_now()
            self._face_delay += DELAY_ALPHA * ((arrived - frame.ts) - self._face_delay)
            image = await asyncio.to_thread(self._image, frame)
            # what the face shows, for whoever checks it downstream (tests, benches): engine time, mouth, expression
            image.metadata["liveportrait"] = {"ts": frame.ts, "seq": frame.seq, "jawOpen": frame.header.get("jawOpen"),
                                              "expression": frame.header.get("expression"), "header": frame.header}
            await self._release(frame.ts + period, image)

    async def _release(self, until: float, image: OutputImageRawFrame | None = None) -> None:
        due = self._held.release(until)
        now = time.monotonic()
        for seg in due.audio:
            if seg.entered:
                self.stats.added_ms.append((now - seg.entered) * 1000.0)
                seg.entered = 0.0
            await self.push_frame(TTSAudioRawFrame(audio=seg.pcm.astype("<i2").tobytes(), sample_rate=seg.rate,
                                                   num_channels=1))
            self._clock.pushed(len(seg.pcm), seg.rate)
        if image is not None:
            self.stats.frames += 1
            self.stats.first_frame_at = self.stats.first_frame_at or now
            self.stats.last_frame_at = now
            if self._paced and not due.audio and self._delayed.empty():
                self._clock.rebase()  # no voice pending (its frames have all gone): counts start over
            if self._video_delay_s > 0 or self._paced:
                # the frame's voice starts a frame before the end of what has been pushed
                mark = self._clock.pushed_s - 1.0 / self._fps
                self._delayed.put_nowait((mark, self._clock.generation, now + self._video_delay_s, image))
            else:
                await self.push_frame(image)
        for item in due.frames:
            await self.push_frame(item)

    async def _delayed_loop(self) -> None:
        """Each frame out, in order, once the transport has taken its voice (with ``audio_probe``; at most
        MAX_HOLD_S) and ``video_delay_ms`` after its voice was pushed."""
        while True:
            mark, generation, due, image = await self._delayed.get()
            deadline = time.monotonic() + MAX_HOLD_S
            while self._paced and not self._clock.reached(mark, generation):
                self._clock.changed.clear()
                try:
                    await asyncio.wait_for(self._clock.changed.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.push_frame(image)

    def _image(self, frame: EngineFrame) -> OutputImageRawFrame:
        """JPEG -> RGB, cut to the asked aspect around the centre and scaled (off the event loop)."""
        w, h = self._size
        if w is None or h is None:
            rgb = simplejpeg.decode_jpeg(frame.jpeg, colorspace="RGB")
            return OutputImageRawFrame(image=rgb.tobytes(), size=(rgb.shape[1], rgb.shape[0]), format="RGB")
        rgb = simplejpeg.decode_jpeg(frame.jpeg, colorspace="RGB", min_width=w, min_height=h)
        fh, fw = rgb.shape[:2]
        scale = max(w / fw, h / fh)
        cw, ch = min(fw, round(w / scale)), min(fh, round(h / scale))
        x0, y0 = (fw - cw) // 2, (fh - ch) // 2
        img = Image.fromarray(np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw]))
        if img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)
        return OutputImageRawFrame(image=img.tobytes(), size=(w, h), format="RGB")
