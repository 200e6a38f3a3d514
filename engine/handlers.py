"""One small function per command, looked up in ``HANDLERS`` by the request's type. All run on the command thread.

A handler returns its reply at once, or returns None and calls ``respond`` later (from a continuation, which the
Mailbox also runs on the command thread). It raises typed errors (engine/errors.py); anything else is a bug and
becomes an ``internal`` error reply, logged with its traceback.

Adding a command (e.g. ``speak``):
1. protocol.py: a frozen request dataclass and its parser row in ``_PARSERS`` (every check of client input there).
2. here: ``def speak(core: Core, req: p.Speak, respond: Respond) -> Reply | None`` - short; slow work goes to a
   worker (``core.render.submit``, ``core.speech.submit``, ``core.clips.submit``; uploads go through
   ``core.avatar_for``, i.e. the prep process) and comes back with ``core.mailbox.then``.
3. here: one row in ``HANDLERS``: ``p.Speak: Route(speak)`` (``ready=False`` if it may run before the models load).
4. docs/protocol.md: an example of the message and its reply.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import protocol as p
from engine.animation.controls import CONTROLS
from engine.animation.idle import IdleConfig
from engine.animation.presets import EXPRESSIONS, INTENSITY_RANGE, preset_state
from engine.animation.state import AnimationState
from engine.animation.timeline import Animator
from engine.avatars import Avatar
from engine.clip import frame_count, render_speech_clip
from engine.core import Core
from engine.errors import BadRequest, Busy, Cancelled, EngineError, Internal
from engine.frames import Still, sample
from engine.speech import decode_audio

log = logging.getLogger(__name__)

Reply = dict[str, Any]
Respond = Callable[[Reply], None]


def ok(core: Core, **fields: Any) -> Reply:
    return p.ok(core.renderer_name, **fields)


def error_reply(core: Core, exc: BaseException) -> Reply:
    """The error reply for any failure: typed errors as they are, anything else is a bug: ``internal``, logged."""
    if not isinstance(exc, EngineError):
        log.error("request failed", exc_info=exc)
        exc = Internal(f"internal error: {type(exc).__name__}: {exc}")
    return p.error(exc, core.renderer_name)


def reply_when_done(core: Core, future: Future[Any], respond: Respond, make: Callable[[Any], Reply]) -> None:
    """When ``future`` resolves (on the command thread): ``respond(make(result))`` or the typed error reply."""
    def done(f: Future[Any]) -> None:
        try:
            reply = make(f.result())
        except Exception as exc:
            reply = error_reply(core, exc)
        respond(reply)

    core.mailbox.then(future, done)


# --- the commands ----------------------------------------------------------------------------------------------

def health(core: Core, _req: p.Health, _respond: Respond) -> Reply:
    dead = core.dead_threads()
    status = "failed" if dead and core.status == "ok" else core.status
    reply = ok(core, status=status, version=p.VERSION, now=core.clock(), renderer_reason=core.renderer_reason,
               renderer_info=core.renderer.info() if core.renderer is not None else {},
               face_detector=core.faces.name if core.faces is not None else None,
               face_detector_reason=core.faces.reason if core.faces is not None else "",
               avatars=len(core.avatars.ids()), default_avatar=core.avatars.default_id,
               streams=core.frame_clock.snapshot(), frames=core.frames.stats.summary(),
               caches={"sources": core.avatars.stats(), "frames": core.frames.cache.stats().as_dict()},
               prep=core.faces.stats() if core.faces is not None else {},
               clips={"running": len(core.clips_running), "queued": core.clips.pending}, turns=_turns(core))
    if dead:
        reply["dead_threads"] = dead
        reply["failure"] = Internal(f"engine thread(s) died: {', '.join(dead)}").to_wire()
    elif core.failure is not None:
        reply["failure"] = core.failure.to_wire()
    return reply


def expressions(core: Core, _req: p.Expressions, _respond: Respond) -> Reply:
    return ok(core, expressions=list(EXPRESSIONS), intensities=dict(INTENSITY_RANGE),
              controls=[{"name": c.name, "min": c.minimum, "max": c.maximum} for c in CONTROLS])


def list_avatars(core: Core, _req: p.ListAvatars, _respond: Respond) -> Reply:
    return ok(core, avatars=core.avatars.ids(), default=core.avatars.default_id, streams=core.frame_clock.snapshot(),
              turns=_turns(core))


def _turns(core: Core) -> dict[str, str]:
    """Each resident avatar's turn state now (health, list_avatars)."""
    now, turns = core.clock(), {}
    for avatar_id in core.avatars.ids():
        avatar = core.avatars.find(avatar_id)
        if avatar is not None:
            with avatar.lock:
                turns[avatar_id] = avatar.animator.turn.state_at(now)
    return turns


def _source_reply(core: Core, avatar: Avatar, cached: bool) -> Reply:
    face = avatar.source.face
    return ok(core, avatar=avatar.id, cached=cached, faces=face.n_faces, detector=face.detector,
              width=int(face.image.shape[1]), height=int(face.image.shape[0]))


def set_source(core: Core, req: p.SetSource, respond: Respond) -> None:
    reply_when_done(core, core.avatar_for(req.image), respond, lambda r: _source_reply(core, *r))


def drop_source(core: Core, req: p.DropSource, _respond: Respond) -> Reply:
    avatar = core.avatars.drop(req.avatar)
    core.frame_clock.set_rate(avatar.id, 0)
    return ok(core, avatar=avatar.id)


def set_expression(core: Core, req: p.SetExpression, _respond: Respond) -> Reply:
    avatar, now = core.avatars.get(req.avatar), core.clock()
    with avatar.lock:
        avatar.animator.set_expression(req.expression, req.intensity, req.transition_ms, now)
    return ok(core, avatar=avatar.id, now=now)


def set_controls(core: Core, req: p.SetControls, _respond: Respond) -> Reply:
    avatar, now = core.avatars.get(req.avatar), core.clock()
    with avatar.lock:
        if req.controls:
            avatar.animator.set_controls(req.controls, req.transition_ms, now, smooth=req.smooth)
        if req.keyframes:
            avatar.animator.schedule(req.keyframes, now)
    extra = {"unrendered": list(req.unrendered)} if req.unrendered else {}
    return ok(core, avatar=avatar.id, now=now, **extra)


def _barge_in(core: Core, avatar: Avatar, now: float) -> None:
    """Stop what the avatar says (avatar lock held): the mouth shuts, the turn becomes listening
    (engine.animation.turn), and the speech audio on PUB is cut."""
    avatar.animator.clear(now)
    core.audio.cut(avatar.id, now)


def clear(core: Core, req: p.Clear, _respond: Respond) -> Reply:
    avatar, now = core.avatars.get(req.avatar), core.clock()
    with avatar.lock:
        _barge_in(core, avatar, now)
        turn = avatar.animator.turn.state_at(now)
    return ok(core, avatar=avatar.id, now=now, turn=turn)


def set_idle(core: Core, req: p.SetIdle, _respond: Respond) -> Reply:
    avatar, now = core.avatars.get(req.avatar), core.clock()
    with avatar.lock:
        a = avatar.animator
        seed = req.seed if req.seed is not None else a.idle_config.seed
        a.set_idle(dataclasses.replace(a.idle_config, enabled=req.enabled, seed=seed), now)
    return ok(core, avatar=avatar.id, now=now)


def set_turn(core: Core, req: p.SetTurn, _respond: Respond) -> Reply:
    avatar, now = core.avatars.get(req.avatar), core.clock()
    with avatar.lock:
        avatar.animator.turn.set(req.state, now, req.transition_ms)
    return ok(core, avatar=avatar.id, now=now, turn=req.state)


def _user_talks(core: Core, avatar: Avatar, interrupt: bool, now: float) -> str:
    """The user talks (avatar lock held): listening, or a barge-in when the avatar speaks and is told to yield;
    an avatar that speaks and is not told to yield keeps the turn. Returns the turn state now."""
    turn = avatar.animator.turn
    if turn.state_at(now) == "speaking":
        if interrupt:
            _barge_in(core, avatar, now)
    elif turn.state != "listening":
        turn.set("listening", now)
    return turn.state_at(now)


def user_audio(core: Core, req: p.UserAudio, _respond: Respond) -> Reply:
    """Analyse one chunk of the user's microphone and drop it: nothing of it is stored or published."""
    avatar, now = core.avatars.get(req.avatar), core.clock()
    samples = np.frombuffer(req.samples, "<i2").astype(np.float32) / 32768.0
    with avatar.lock:
        heard = avatar.animator.turn.listener.hear(samples, req.sample_rate, now)
        # voiced frames, not just energy: a cough or a door does not take the turn from a speaking avatar
        talks = heard.voiced >= 2 if avatar.animator.turn.state_at(now) == "speaking" else heard.active > 0
        turn = _user_talks(core, avatar, req.interrupt, now) if talks else avatar.animator.turn.state_at(now)
    del samples
    return ok(core, avatar=avatar.id, now=now, turn=turn)


def user_speech(core: Core, req: p.UserSpeech, _respond: Respond) -> Reply:
    """A VAD's start/stop of the user's speech: pauses (nods) are known, pitch (question brows) is not."""
    avatar, now = core.avatars.get(req.avatar), core.clock()
    with avatar.lock:
        avatar.animator.turn.listener.vad(req.speaking, now)
        turn = _user_talks(core, avatar, req.interrupt, now) if req.speaking else avatar.animator.turn.state_at(now)
    return ok(core, avatar=avatar.id, now=now, turn=turn)


def render(core: Core, req: p.Render, respond: Respond) -> None:
    """A cached JPEG, or a frame drawn and encoded; the avatar first prepared when the request carries an image."""
    output = req.output or core.settings.output
    quality = req.quality or core.settings.jpeg_quality

    def with_avatar(avatar: Avatar) -> None:
        t = core.clock()
        if req.expression is not None or req.controls:
            state, static = preset_state(req.expression or "neutral", req.intensity, req.controls), True
        else:
            state, static = sample(avatar, t)
        reply_when_done(core, core.frames.still(avatar, state, static, output, quality, t), respond,
                        lambda s: _still_reply(core, avatar, s))

    _on_avatar(core, req.avatar, req.image, respond, with_avatar)


def _on_avatar(core: Core, avatar_id: str | None, image: bytes | None, respond: Respond,
               then: Callable[[Avatar], None]) -> None:
    """Run ``then`` with a resident avatar, or, for an ``image``, once it is prepared (on the command thread)."""
    if image is None:
        then(core.avatars.get(avatar_id))
        return

    def prepared(f: Future[tuple[Avatar, bool]]) -> None:
        try:
            then(f.result()[0])
        except Exception as exc:
            respond(error_reply(core, exc))

    core.mailbox.then(core.avatar_for(image), prepared)


def _still_reply(core: Core, avatar: Avatar, still: Still) -> Reply:
    return ok(core, avatar=avatar.id, jpeg=still.jpeg, cached=still.cached, header=still.header)


def stream(core: Core, req: p.Stream, _respond: Respond) -> Reply:
    fps = core.settings.default_fps if req.fps is None else req.fps
    avatar = core.avatars.get(req.avatar)
    core.frame_clock.set_rate(avatar.id, fps, req.epoch, req.framing)
    return ok(core, avatar=avatar.id, fps=fps, topic=(p.FRAME_TOPIC + avatar.id.encode()).decode(), epoch=req.epoch,
              framing=req.framing.kind, width=req.framing.width, height=req.framing.height)


def speak(core: Core, req: p.Speak, respond: Respond) -> None:
    """Lip-sync audio on the avatar's live animator; the reply says when it is heard (engine seconds).

    Decoding + analysis run on the speech worker (its own queue: never behind an upload or a clip), not here:
    measured on this 2-core machine a 60 s WAV (the one-message
    limit) takes ~75 ms to decode and ~160 ms to analyse, long enough to hold up ``health`` and a barge-in ``clear``
    behind it. A 5 s chunk (~10 ms) would be fine either way; one path for both keeps it simple. The animator is
    updated under the avatar's lock (the stream samples it per frame, so streamed frames show the speech).
    """
    avatar = core.avatars.get(req.avatar)

    def work() -> Reply:
        pcm = decode_audio(req.audio, req.format, req.sample_rate, p.MAX_AUDIO_SECONDS)
        p.check_marks(req.marks, pcm.duration)
        with avatar.lock:
            now = core.clock()
            span = avatar.animator.speak(pcm, now, req.start, req.append, req.speech_motion, req.marks)
        core.audio.speech(avatar.id, pcm, span.start, cut=None if req.append else now)  # heard as the mouth moves
        return ok(core, avatar=avatar.id, start=span.start, end=span.end, duration=span.duration)

    reply_when_done(core, core.speech.submit(work), respond, lambda r: r)


CLIP_SEED = 7  # idle life in clips is seeded: the same request gives the same clip (blinks included)
CLIP_FRAME_WAIT_S = 60.0  # one clip frame on the render worker (LivePortrait on a CPU takes seconds)


def _draw_on_render_worker(core: Core, avatar: Avatar,
                           cancel: threading.Event) -> Callable[[AnimationState], np.ndarray]:
    """draw(state) for a clip: one job per frame on the render worker's side lane, which runs only when no stream
    tick or `render` is queued; the clip thread waits for room there (no polling) and stops when cancelled."""
    def draw(state: AnimationState) -> np.ndarray:
        if cancel.is_set():
            raise Cancelled("the clip was cancelled")
        future = core.render.submit_side(lambda: core.frames.draw(avatar, state, "full").frame, CLIP_FRAME_WAIT_S,
                                         abort=cancel)
        return future.result(timeout=CLIP_FRAME_WAIT_S)

    return draw


def speak_clip(core: Core, req: p.SpeakClip, respond: Respond) -> None:
    """The whole MP4 of the avatar speaking, through a FRESH animator (the live one and its stream are untouched):
    the avatar's renderer + paste-back per frame, idle life on with a fixed seed so blinks happen.

    The clip runs on the clip worker (decode, animation, H.264), with its own queue (CLIP_QUEUE, busy when full):
    live ``speak`` (speech worker), ``set_source`` (prep process) and ``health`` never wait behind it. Its frames are
    drawn on the render worker's side lane, so streams keep their ticks. ``cancel_clip`` with the request's
    ``clip`` id stops it between two frames (the bridge sends that when its HTTP client goes away).
    Bounded by the 60 s audio limit and fps <= 60: at most 3600 frames."""
    clip_id = req.clip if req.clip is not None else f"clip-{id(req):x}-{time.monotonic_ns()}"
    if clip_id in core.clips_running:
        raise BadRequest(f"clip id {clip_id!r} is already in use")
    cancel = core.clips_running[clip_id] = threading.Event()

    def finished(reply: Reply) -> None:
        core.clips_running.pop(clip_id, None)
        respond(reply)

    def with_avatar(avatar: Avatar) -> None:
        def work() -> Reply:
            if cancel.is_set():
                raise Cancelled("the clip was cancelled before it started")
            pcm = decode_audio(req.audio, req.format, req.sample_rate, p.MAX_AUDIO_SECONDS)
            p.check_marks(req.marks, pcm.duration)
            animator = Animator(IdleConfig(enabled=True, seed=CLIP_SEED), now=0.0)
            animator.set_expression(req.expression, req.intensity, 0.0, 0.0)
            gain = req.speech_motion if req.speech_motion is not None else avatar.animator.speech_motion
            mp4 = render_speech_clip(pcm, _draw_on_render_worker(core, avatar, cancel), animator, req.fps,
                                     speech_motion=gain, marks=req.marks)
            return ok(core, avatar=avatar.id, mp4=mp4, frames=frame_count(pcm.duration, req.fps),
                      duration=pcm.duration, fps=req.fps, clip=clip_id)

        try:
            future = core.clips.submit(work)
        except Exception as exc:
            finished(error_reply(core, exc))
            return
        reply_when_done(core, future, finished, lambda r: r)

    try:
        _on_avatar(core, req.avatar, req.image, finished, with_avatar)
    except Exception:  # refused at once (unknown avatar, busy): the id is free again
        core.clips_running.pop(clip_id, None)
        raise


def set_speech_motion(core: Core, req: p.SetSpeechMotion, _respond: Respond) -> Reply:
    """The avatar's default gain of speech-driven head, brow and blink motion (0 = lips only)."""
    avatar, now = core.avatars.get(req.avatar), core.clock()
    with avatar.lock:
        avatar.animator.set_speech_motion(req.speech_motion)
    return ok(core, avatar=avatar.id, now=now, speech_motion=req.speech_motion)


def cancel_clip(core: Core, req: p.CancelClip, _respond: Respond) -> Reply:
    """Stop a talking clip (queued or being made); its own request is answered ``cancelled``. An unknown or
    finished id is not an error: ``cancelled`` says whether there was one to stop."""
    cancel = core.clips_running.get(req.clip)
    if cancel is not None:
        cancel.set()
        core.render.wake()  # a clip waiting for room on the render worker stops waiting
    return ok(core, clip=req.clip, cancelled=cancel is not None)


# --- the table ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    handler: Callable[[Core, Any, Respond], Reply | None]
    ready: bool = True  # needs the models loaded (answers busy while starting, the failure after)


HANDLERS: dict[type, Route] = {
    p.Health: Route(health, ready=False),
    p.Expressions: Route(expressions, ready=False),
    p.ListAvatars: Route(list_avatars),
    p.SetSource: Route(set_source),
    p.DropSource: Route(drop_source),
    p.SetExpression: Route(set_expression),
    p.SetControls: Route(set_controls),
    p.Clear: Route(clear),
    p.SetIdle: Route(set_idle),
    p.Render: Route(render),
    p.Stream: Route(stream),
    p.Speak: Route(speak),
    p.SpeakClip: Route(speak_clip),
    p.CancelClip: Route(cancel_clip, ready=False),
    p.SetTurn: Route(set_turn),
    p.UserAudio: Route(user_audio),
    p.UserSpeech: Route(user_speech),
    p.SetSpeechMotion: Route(set_speech_motion),
}


def handle(core: Core, req: p.Request, respond: Respond) -> Reply | None:
    """Command thread: run the request's handler; a reply now, or None when it will ``respond`` later."""
    route = HANDLERS.get(type(req))
    if route is None:
        raise Internal(f"no handler for {type(req).__name__}")
    if route.ready and core.status != "ok":
        if core.failure is not None:
            raise core.failure
        raise Busy("the engine is starting (loading models); retry shortly")
    return route.handler(core, req, respond)
