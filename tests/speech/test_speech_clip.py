"""The MP4 clip: H.264 + AAC from PyAV, decoded back with PyAV; the offline renderer's face speaking."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from engine.animation.state import AnimationState
from engine.animation.timeline import Animator, IdleConfig
from engine.clip import encode_mp4, frame_count, render_speech_clip
from engine.errors import BadRequest
from engine.face.intake import decode_image
from engine.face.pipeline import FacePipeline
from engine.render.offline import OfflineRenderer
from engine.speech.audio import Pcm
from tests.speech.conftest import SENTENCE

DATA = Path(__file__).resolve().parents[1] / "data"
Speech = Callable[..., Pcm]


def probe(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        info = {"video": v.codec_context.name, "audio": a.codec_context.name, "fps": float(v.average_rate),
                "size": (v.codec_context.width, v.codec_context.height),
                "audio_s": float(a.duration * a.time_base)}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    info["frames"] = frames
    return info


def test_the_offline_face_speaks_in_an_mp4(speech: Speech) -> None:
    pcm = speech(SENTENCE)
    face = FacePipeline.create(mode="dlib").crop(decode_image((DATA / "s1.jpg").read_bytes()))
    renderer = OfflineRenderer()
    source = renderer.prepare(face)
    animator = Animator(IdleConfig(seed=1), 50.0)
    jaws: list[float] = []

    def draw(state: AnimationState) -> np.ndarray:
        jaws.append(state.controls["jawOpen"])
        return renderer.render(source, state)

    data = render_speech_clip(pcm, draw, animator, fps=25.0, start=50.0)
    info = probe(data)
    assert info["video"] == "h264" and info["audio"] == "aac"
    assert info["fps"] == 25.0 and info["size"] == (512, 512)
    assert len(info["frames"]) == frame_count(pcm.duration, 25.0) == round(pcm.duration * 25)
    assert abs(info["audio_s"] - pcm.duration) < 0.01
    assert max(jaws) > 0.4
    # the mouth region of the decoded video changes with the jaw (the lips follow the words)
    y0, y1 = 330, 450
    mouth = np.array([f[y0:y1, 180:330].mean() for f in info["frames"]])
    assert np.corrcoef(mouth, np.array(jaws))[0, 1] < -0.5  # more open = darker


@pytest.mark.parametrize("fps", [25.0, 30.0, 12.5])
def test_frame_count_fps_and_audio_duration(speech: Speech, fps: float) -> None:
    pcm = speech("[[A:::mA:::]]", "de")
    frames = (np.full((97, 131, 3), i % 255, np.uint8) for i in range(frame_count(pcm.duration, fps)))
    info = probe(encode_mp4(frames, fps, pcm))
    assert len(info["frames"]) == frame_count(pcm.duration, fps)
    assert info["fps"] == fps and info["size"] == (130, 96)  # odd sizes lose one pixel
    assert abs(info["audio_s"] - pcm.duration) < 0.01


def test_audio_at_an_odd_rate_is_resampled_for_aac() -> None:
    pcm = Pcm((0.3 * np.sin(np.arange(9000) * 0.05)).astype(np.float32), 9000)
    info = probe(encode_mp4((np.zeros((64, 64, 3), np.uint8) for _ in range(25)), 25.0, pcm))
    assert abs(info["audio_s"] - 1.0) < 0.01


@pytest.mark.parametrize("fps", [0, -5, 61, float("nan"), True, "25"])
def test_bad_fps_is_refused(fps: object) -> None:
    pcm = Pcm(np.zeros(800, np.float32), 8000)
    with pytest.raises(BadRequest):
        render_speech_clip(pcm, lambda s: np.zeros((8, 8, 3), np.uint8), Animator(), fps=fps)  # type: ignore[arg-type]


def test_no_frames_or_unusable_frames_are_refused() -> None:
    pcm = Pcm(np.zeros(800, np.float32), 8000)
    for frames in ([], [np.zeros((1, 64, 3), np.uint8)], [np.zeros((64, 64), np.uint8)]):
        with pytest.raises(BadRequest):
            encode_mp4(iter(frames), 25.0, pcm)
