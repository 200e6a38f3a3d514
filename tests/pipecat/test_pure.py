"""The pure parts: the LLM's emotion tags cut out of streamed text, and the voice held by engine time."""

from __future__ import annotations

import numpy as np

from engine.integrations.pipecat import Emotion, HeldSpeech, Segment, TagStripper
from engine.integrations.pipecat.emotion import parse_tag


def stream(tokens: list[str]) -> list[str | Emotion]:
    s = TagStripper()
    out: list[str | Emotion] = []
    for token in tokens:
        out += s.feed(token)
    return out + s.flush()


def test_tags_split_across_tokens_become_emotions_in_order_and_leave_the_text() -> None:
    out = stream(["[hap", "py] Great to ", "see you! [sa", "d 0.6] But I ", "[laughs] have to go."])
    assert out == [Emotion("happy", 0.8), "Great to see you! ", Emotion("sad", 0.6), "But I [laughs] have to go."]


def test_text_leaves_at_sentence_ends_not_before() -> None:
    s = TagStripper()
    assert s.feed("Hello there") == []
    assert s.feed(". How are") == ["Hello there. "]
    assert s.flush() == ["How are"]


def test_a_lone_bracket_is_text_once_it_cannot_be_a_tag() -> None:
    assert stream(["a [ b ", "x" * 40, ". end"]) == ["a [ b " + "x" * 40 + ". ", "end"]


def test_tag_forms() -> None:
    assert parse_tag("[Surprised 1]") == Emotion("surprised", 1.0)
    assert parse_tag("[sad:0.25]") == Emotion("sad", 0.25)
    assert parse_tag("[happy 7]") == Emotion("happy", 1.0)  # clamped to the intensity range
    assert parse_tag("[angry]") is None


def test_held_speech_leaves_by_engine_time_cut_at_a_sample() -> None:
    held = HeldSpeech()
    held.add(Segment(10.0, np.arange(100, dtype=np.int16), 100))  # 1 s at 100 Hz, heard from engine time 10
    held.add_after(11.0, "stopped")
    assert held.release(9.99).audio == []
    first = held.release(10.25)
    assert [len(s.pcm) for s in first.audio] == [25] and first.audio[0].start == 10.0 and not first.frames
    rest = held.release(11.5)
    assert rest.audio[0].pcm[0] == 25 and len(rest.audio[0].pcm) == 75 and rest.frames == ["stopped"]
    assert not held.pending


def test_barge_in_drops_everything_held() -> None:
    held = HeldSpeech()
    held.add(Segment(0.0, np.ones(50, np.int16), 100))
    held.add_after(0.5, "stopped")
    assert held.drop() == 50
    assert held.release(10.0).audio == [] and not held.pending
