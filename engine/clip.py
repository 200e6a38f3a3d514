"""MP4 clips: H.264 video + AAC audio muxed with PyAV (its wheels ship FFmpeg with libx264 and aac; no system
ffmpeg), and the offline render of a whole speech clip (what POST /api/speak answers).

Frames are encoded as they come (an iterator), so a long clip never holds every frame in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction

import av
import numpy as np

from engine.animation.marks import Mark
from engine.animation.state import AnimationState
from engine.animation.timeline import Animator
from engine.errors import BadRequest
from engine.speech.audio import Pcm, resample

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
AAC_FRAME = 1024
AUDIO_BITRATE = 96_000
MIN_FPS, MAX_FPS = 1.0, 60.0


def frame_count(duration: float, fps: float) -> int:
    """Video frames for a clip as long as its audio: the nearest whole number (at least one)."""
    return max(1, round(duration * fps))


def encode_mp4(frames: Iterable[np.ndarray], fps: float, audio: Pcm, crf: int = 23) -> bytes:
    """RGB uint8 frames (H, W, 3; odd sizes are cropped by one pixel) at ``fps`` plus mono audio -> MP4 bytes."""
    fps = _check_fps(fps)
    rate = Fraction(fps).limit_denominator(1001)
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        video = None
        astream = container.add_stream("aac", rate=_aac_rate(audio.sample_rate))
        astream.bit_rate = AUDIO_BITRATE
        astream.layout = "mono"
        for i, rgb in enumerate(frames):
            if rgb.ndim != 3 or rgb.shape[2] < 3 or min(rgb.shape[:2]) < 2:
                raise BadRequest(f"a clip frame must be an RGB image of at least 2x2 pixels, got {rgb.shape}")
            img = np.ascontiguousarray(rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2, :3], dtype=np.uint8)
            if video is None:
                video = container.add_stream("libx264", rate=rate)
                video.width, video.height = img.shape[1], img.shape[0]
                video.pix_fmt = "yuv420p"
                video.options = {"crf": str(crf), "preset": "veryfast"}
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1) / rate
            for packet in video.encode(frame):
                container.mux(packet)
        if video is None:
            raise BadRequest("a clip needs at least one frame")
        for packet in video.encode():
            container.mux(packet)
        for packet in _encode_audio(astream, audio):
            container.mux(packet)
    return out.getvalue()


def render_speech_clip(audio: Pcm, draw: Callable[[AnimationState], np.ndarray], animator: Animator,
                       fps: float = 25.0, start: float = 0.0, speech_motion: float | None = None,
                       marks: tuple[Mark, ...] = ()) -> bytes:
    """The MP4 of ``animator``'s face speaking ``audio``: frame i is draw(animator.sample(start + i / fps)).

    ``draw`` is the avatar's renderer plus paste-back; the animator keeps its expression and idle life; the voice
    moves the head, brows and blinks too (gain ``speech_motion``, None: the animator's), and ``marks`` change the
    expression on the words.
    """
    fps = _check_fps(fps)
    animator.speak(audio, now=start, start=start, speech_motion=speech_motion, marks=marks)
    n = frame_count(audio.duration, fps)

    def frames() -> Iterator[np.ndarray]:
        for i in range(n):
            yield draw(animator.sample(start + i / fps))

    return encode_mp4(frames(), fps, audio)


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not MIN_FPS <= float(fps) <= MAX_FPS:
        raise BadRequest(f"fps must be a number in {MIN_FPS:g}..{MAX_FPS:g}, got {fps!r}")
    return float(fps)


def _aac_rate(rate: int) -> int:
    return rate if rate in AAC_RATES else 48_000


def _encode_audio(stream: av.audio.stream.AudioStream, audio: Pcm) -> Iterator[av.Packet]:
    rate = _aac_rate(audio.sample_rate)
    samples = audio.samples if rate == audio.sample_rate else resample(audio.samples, audio.sample_rate, rate)
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    for i in range(0, len(samples), AAC_FRAME):
        chunk = samples[i: i + AAC_FRAME]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = Fraction(1, rate)
        yield from stream.encode(frame)
    yield from stream.encode()
