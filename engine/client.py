"""The one client-side implementation of the engine protocol (docs/protocol.md): sync and asyncio.

The bridge, the tests, the benches and the README examples speak to the engine through this module only, so a
protocol change is made in one place on each side (engine/protocol.py there, here here).

Reliability is the zguide's Lazy Pirate: a REQ socket that missed its reply is stuck (it still expects that reply),
so it is closed with linger 0, a fresh one is connected and the request is sent again, ``retries`` times. The async
client keeps a small pool of REQ sockets so concurrent callers each hold their own; a caller beyond the pool waits
a bounded time (count and deadline) and then gets ``Overloaded`` instead of queuing without end.

Frames arrive on the PUB socket as ``[topic, msgpack header, jpeg]``; ``FrameSubscriber`` and
``AsyncFrameSubscriber`` turn them into ``Frame`` dataclasses. ``clock_offset`` measures
``engine_time = client_time + offset`` from ``health``'s ``now`` (time.monotonic on both sides).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Generic, ParamSpec, Self, TypeVar

import msgpack
import zmq
import zmq.asyncio

from engine.constants import AUDIO_TOPIC, FRAME_TOPIC, PROTOCOL_VERSION
from engine.errors import BadEngineReply, Busy, EngineUnavailableError
from engine.security import CurveClientKeys

DEFAULT_TIMEOUT_MS = 20_000

# ---------------------------------------------------------------------------------------------------- errors


class EngineClientError(Exception):
    """Base of every error this client raises; ``code`` is the wire code (or a client-side one below)."""

    code = "client_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class EngineReplyError(EngineClientError):
    """The engine answered ``{"ok": false, "error": {"code", "message"}}``: the wire code and message as sent."""

    def __init__(self, code: str, message: str, reply: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, code)
        self.reply: dict[str, Any] = dict(reply or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class EngineUnavailable(EngineClientError):
    """No reply within the timeout after every retry (the engine is down, wedged or unreachable)."""

    code = EngineUnavailableError.code


class Overloaded(EngineClientError):
    """Too many callers already wait for a socket of the pool, or the wait passed its deadline."""

    code = Busy.code


class BadReply(EngineClientError):
    """The engine's bytes were not a msgpack map: a different program is listening, or a bug."""

    code = BadEngineReply.code


# ---------------------------------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """Every reply names the renderer drawing the face; ``raw`` keeps the whole map for fields added later."""

    renderer: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class HealthReply(Reply):
    status: str = ""
    version: int = 0
    now: float = 0.0
    renderer_reason: str = ""
    renderer_info: dict[str, Any] = field(default_factory=dict)
    face_detector: str = ""
    face_detector_reason: str = ""
    avatars: int = 0
    default_avatar: str = ""
    streams: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    caches: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, Any] | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ExpressionsReply(Reply):
    expressions: list[str] = field(default_factory=list)
    intensities: dict[str, float] = field(default_factory=dict)
    controls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SourceReply(Reply):
    avatar: str = ""
    cached: bool = False
    faces: int = 0
    detector: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class AvatarReply(Reply):
    avatar: str = ""
    now: float | None = None


@dataclass(frozen=True)
class AvatarsReply(Reply):
    avatars: list[str] = field(default_factory=list)
    default: str = ""
    streams: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderReply(Reply):
    avatar: str = ""
    cached: bool = False
    jpeg: bytes = b""
    header: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamReply(Reply):
    avatar: str = ""
    fps: float = 0.0
    topic: str = ""


@dataclass(frozen=True)
class AudioMessage:
    """One message of the engine's speech audio (PUB topic ``audio.<avatar>``, docs/protocol.md), parsed."""

    kind: str  # "pcm" | "cut"
    avatar: str
    seq: int
    ts: float  # engine seconds: when the first sample is heard (pcm), or from when nothing is heard (cut)
    sample_rate: int
    pcm: bytes  # little-endian int16 mono; empty for a cut

    @property
    def n_samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate if self.sample_rate else 0.0


def parse_audio(parts: Sequence[bytes]) -> AudioMessage:
    """A received ``[audio.<avatar>, header, pcm]`` -> AudioMessage; ValueError on anything malformed."""
    if len(parts) != 3 or not parts[0].startswith(AUDIO_TOPIC):
        raise ValueError("an audio message is [audio.<avatar>, header, pcm]")
    header = msgpack.unpackb(parts[1])
    if not isinstance(header, dict):
        raise ValueError("an audio header is a map")
    kind = header.get("kind")
    if kind not in ("pcm", "cut") or header.get("format", "s16le") != "s16le" or header.get("channels", 1) != 1:
        raise ValueError(f"unsupported audio message {header!r}")
    pcm = bytes(parts[2]) if kind == "pcm" else b""
    if len(pcm) % 2:
        raise ValueError("s16le audio has an odd byte count")
    return AudioMessage(kind, str(header["avatar"]), int(header["seq"]), float(header["ts"]),
                        int(header.get("sample_rate", 0)), pcm)


@dataclass(frozen=True)
class Frame:
    """One published frame: ``topic`` is ``frame.<avatar>``, ``header`` the engine's map (seq, ts, ...)."""

    topic: str
    header: dict[str, Any]
    jpeg: bytes

    @property
    def avatar(self) -> str:
        return self.topic[len(FRAME_TOPIC):]

    @property
    def seq(self) -> int:
        return int(self.header.get("seq", -1))

    @property
    def ts(self) -> float:
        return float(self.header.get("ts", 0.0))

    @property
    def epoch(self) -> int:
        """Raised each time a cluster moves the avatar to another replica (seq restarts there); 0 on one engine."""
        return int(self.header.get("epoch", 0))


@dataclass(frozen=True)
class ClockOffset:
    """``engine_time = client_time + offset`` (seconds, time.monotonic); ``rtt`` of the sample it came from."""

    offset: float
    rtt: float

    def to_engine(self, client_time: float | None = None) -> float:
        return (time.monotonic() if client_time is None else client_time) + self.offset


@dataclass(frozen=True)
class Keyframe:
    """A scheduled control set at an engine time (``set_controls``' ``keyframes``)."""

    t: float
    controls: dict[str, float]


R = TypeVar("R", bound=Reply)
T = TypeVar("T")


def parse_reply(cls: type[R], reply: Mapping[str, Any]) -> R:
    """Build a typed reply from the fields it knows; unknown fields stay in ``raw``."""
    known = {f.name for f in fields(cls)} - {"raw"}
    return cls(**{k: v for k, v in reply.items() if k in known}, raw=dict(reply))


def check_reply(reply: Any) -> dict[str, Any]:
    """Raise the engine's own error for ``ok: false``; return the map otherwise."""
    if not isinstance(reply, dict):
        raise BadReply(f"the engine sent a {type(reply).__name__}, not a map")
    if not reply.get("ok"):
        err = reply.get("error")
        err = err if isinstance(err, dict) else {}
        raise EngineReplyError(str(err.get("code", "internal")), str(err.get("message", "engine error")), reply)
    return reply


def build_message(cmd: str, fields_: Mapping[str, Any]) -> dict[str, Any]:
    """``{"v": 1, "cmd": cmd, ...}``, leaving out fields given as None (the engine's defaults apply)."""
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "cmd": cmd}
    for key, value in fields_.items():
        if value is None:
            continue
        if key == "keyframes":
            value = [{"t": k.t, "controls": dict(k.controls)} if isinstance(k, Keyframe) else k for k in value]
        message[key] = value
    return message


def _decode(data: bytes) -> dict[str, Any]:
    try:
        reply = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise BadReply(f"the engine sent bytes that are not msgpack: {exc}") from None
    if not isinstance(reply, dict):
        raise BadReply(f"the engine sent a {type(reply).__name__}, not a map")
    return reply


# ---------------------------------------------------------------------------------------------------- CURVE


def _socket(ctx: zmq.Context, kind: int, addr: str, curve: CurveClientKeys | None) -> Any:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sock)
    sock.connect(addr)
    return sock


def _subscriber(ctx: zmq.Context, addr: str | None, avatar: str | None, curve: CurveClientKeys | None,
                hwm: int) -> Any:
    """A SUB socket on ``frame.<avatar>`` (or every avatar), at most ``hwm`` frames queued, connected to ``addr``
    (None: the caller connects it, to as many publishers as it follows)."""
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if curve is not None:
        curve.apply(sock)
    sock.subscribe(FRAME_TOPIC + (avatar.encode() if avatar else b""))
    if addr is not None:
        sock.connect(addr)
    return sock


def _best_offset(samples: Sequence[tuple[float, float, float]]) -> ClockOffset:
    """The sample with the smallest round trip bounds the error best (Cristian's algorithm)."""
    sent, now, received = min(samples, key=lambda s: s[2] - s[0])
    return ClockOffset(now - (sent + received) / 2, received - sent)


# ---------------------------------------------------------------------------------------------------- commands
# One row per command helper. A row is a function whose signature and docstring are the helper's, returning the
# command's fields (None: left out, the engine's default applies); ``command`` names the wire command and the typed
# reply. EngineClient and AsyncEngineClient both get a method per row (blocking and awaitable): nothing is mirrored.

P = ParamSpec("P")


@dataclass(frozen=True)
class Command(Generic[P, R]):
    """A command helper: the wire ``name``, the typed ``reply`` and ``fields`` (helper arguments -> message fields).

    A ``timeout_ms`` key in the fields is the request's timeout, not a message field (``call``'s own argument)."""

    name: str
    reply: type[R]
    fields: Callable[P, dict[str, Any]]

    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fields).replace(return_annotation=self.reply.__name__)


def command(name: str, reply: type[R]) -> Callable[[Callable[P, dict[str, Any]]], Command[P, R]]:
    def make(fields_: Callable[P, dict[str, Any]]) -> Command[P, R]:
        return Command(name, reply, fields_)
    return make


def _dict(values: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if values is None else dict(values)


@command("health", HealthReply)
def _health(timeout_ms: int | None = None) -> dict[str, Any]:
    """The engine's status (ok, starting, failed), renderer, avatars, streams, frame timings and its clock (now)."""
    return {"timeout_ms": timeout_ms}


@command("expressions", ExpressionsReply)
def _expressions() -> dict[str, Any]:
    """The expression presets, the intensity range and every control with its range."""
    return {}


@command("list_avatars", AvatarsReply)
def _list_avatars() -> dict[str, Any]:
    """The resident avatars, the default one and the streams running."""
    return {}


@command("set_source", SourceReply)
def _set_source(image: bytes) -> dict[str, Any]:
    """A portrait (JPEG, PNG or WebP bytes) becomes an avatar; its id is derived from the bytes (cached)."""
    return {"image": image}


@command("drop_source", AvatarReply)
def _drop_source(avatar: str) -> dict[str, Any]:
    """Forget an avatar (its stream stops)."""
    return {"avatar": avatar}


@command("set_expression", AvatarReply)
def _set_expression(avatar: str, expression: str, intensity: float | None = None,
                    transition_ms: float | None = None) -> dict[str, Any]:
    """Ease an avatar into a preset at an intensity (0-1) over ``transition_ms``."""
    return {"avatar": avatar, "expression": expression, "intensity": intensity, "transition_ms": transition_ms}


@command("set_controls", AvatarReply)
def _set_controls(avatar: str, controls: Mapping[str, float] | None = None, *, transition_ms: float | None = None,
                  smooth: bool | None = None,
                  keyframes: Sequence[Keyframe | Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Set controls (our names or ARKit's) now, or schedule ``keyframes`` at engine times."""
    return {"avatar": avatar, "controls": _dict(controls), "transition_ms": transition_ms, "smooth": smooth,
            "keyframes": keyframes}


@command("clear", AvatarReply)
def _clear(avatar: str) -> dict[str, Any]:
    """Drop an avatar's schedules and speech; it eases back to its commanded state."""
    return {"avatar": avatar}


@command("set_idle", AvatarReply)
def _set_idle(avatar: str, enabled: bool, seed: int | None = None) -> dict[str, Any]:
    """Idle life (blinks, breathing, small head motion) on or off, optionally seeded."""
    return {"avatar": avatar, "enabled": enabled, "seed": seed}


@command("render", RenderReply)
def _render(avatar: str | None = None, image: bytes | None = None, expression: str | None = None,
            intensity: float | None = None, controls: Mapping[str, float] | None = None,
            output: str | None = None, quality: int | None = None) -> dict[str, Any]:
    """One JPEG: of an avatar's animation now, or a one-off state (expression, intensity, controls); ``image``
    renders a portrait without keeping it as an avatar."""
    return {"avatar": avatar, "image": image, "expression": expression, "intensity": intensity,
            "controls": _dict(controls), "output": output, "quality": quality}


@command("stream", StreamReply)
def _stream(avatar: str, fps: float | None = None) -> dict[str, Any]:
    """Publish an avatar's frames on the PUB socket at ``fps`` (None: the engine's default; 0 stops)."""
    return {"avatar": avatar, "fps": fps}


COMMANDS: tuple[Command[Any, Any], ...] = (
    _health, _expressions, _list_avatars, _set_source, _drop_source, _set_expression, _set_controls, _clear,
    _set_idle, _render, _stream,
)


def _method(spec: Command[Any, Any]) -> Callable[..., Any]:
    """The method a Command row gives a client class: blocking on EngineClient, a coroutine on AsyncEngineClient
    (each class's ``_send`` is the only difference). ``help()`` and ``inspect.signature`` show the row's."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._send(spec, spec.fields(*args, **kwargs))

    functools.update_wrapper(method, spec.fields)
    method.__name__ = method.__qualname__ = spec.name
    sig = spec.signature()
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = sig.replace(parameters=[self_param, *sig.parameters.values()])  # type: ignore[attr-defined]
    return method


def _with_helpers(cls: type[T]) -> type[T]:
    """Give a client class one method per row of COMMANDS (a hand-written method of the same name wins)."""
    for spec in COMMANDS:
        if spec.name not in cls.__dict__:
            setattr(cls, spec.name, _method(spec))
    return cls


def _ready(reply: HealthReply) -> bool:
    """wait_ready's test of one health reply: True when ok, an error when the engine failed to start."""
    if reply.status == "failed":
        raise EngineReplyError("start_failed", str((reply.failure or {}).get("message", "")), reply.raw)
    return reply.ready


# ---------------------------------------------------------------------------------------------------- sync


@_with_helpers
class EngineClient:
    """Blocking client: one REQ socket behind a lock (safe from several threads, one request at a time).

    A method per command of COMMANDS (health, expressions, list_avatars, set_source, drop_source, set_expression,
    set_controls, clear, set_idle, render, stream) returns its typed reply; ``call`` sends any command."""

    def __init__(self, addr: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, retries: int = 1,
                 curve: CurveClientKeys | None = None, context: zmq.Context | None = None) -> None:
        self.addr, self.timeout_ms, self.retries, self.curve = addr, timeout_ms, retries, curve
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock: zmq.Socket | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, message: Mapping[str, Any] | bytes, timeout_ms: int | None = None,
                retries: int | None = None) -> dict[str, Any]:
        """One round trip with Lazy Pirate retries; the reply map as sent (``ok`` true or false)."""
        payload = message if isinstance(message, bytes) else msgpack.packb(dict(message), use_bin_type=True)
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        tries = 1 + (self.retries if retries is None else retries)
        with self._lock:
            for _ in range(tries):
                if self._sock is None:
                    self._sock = _socket(self._ctx, zmq.REQ, self.addr, self.curve)
                self._sock.send(payload)
                if self._sock.poll(timeout, zmq.POLLIN):
                    return _decode(self._sock.recv())
                self._sock.close(linger=0)
                self._sock = None
        raise EngineUnavailable(f"no reply from the engine at {self.addr} within {timeout} ms ({tries} tries)")

    def call(self, cmd: str, timeout_ms: int | None = None, **fields_: Any) -> dict[str, Any]:
        """Any command, including ones without a helper yet (``speak``); raises EngineReplyError on ``ok: false``."""
        return check_reply(self.request(build_message(cmd, fields_), timeout_ms))

    def _send(self, spec: Command[Any, R], fields_: dict[str, Any]) -> R:
        return parse_reply(spec.reply, self.call(spec.name, **fields_))

    def wait_ready(self, timeout_s: float = 90.0, poll_s: float = 0.2) -> HealthReply:
        """Poll ``health`` until the engine says ``ok`` (it answers ``starting`` while models load)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise EngineUnavailable(f"the engine at {self.addr} was not ready within {timeout_s:g} s")
            with contextlib.suppress(EngineUnavailable):
                reply = self.health(timeout_ms=min(left_ms, 1000))
                if _ready(reply):
                    return reply
            time.sleep(poll_s)

    def clock_offset(self, samples: int = 5) -> ClockOffset:
        measured = []
        for _ in range(max(1, samples)):
            sent = time.monotonic()
            now = self.health().now
            measured.append((sent, now, time.monotonic()))
        return _best_offset(measured)

    def subscribe(self, frame_addr: str, avatar: str | None = None) -> FrameSubscriber:
        return FrameSubscriber(frame_addr, avatar, curve=self.curve)  # own context: closes independently

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close(linger=0)
                self._sock = None
        if self._own_ctx:
            self._ctx.term()


class FrameSubscriber:
    """SUB socket for ``frame.<avatar>`` (or every avatar): ``recv`` with a timeout, or iterate forever."""

    def __init__(self, addr: str | None, avatar: str | None = None, *, curve: CurveClientKeys | None = None,
                 context: zmq.Context | None = None, hwm: int = 4) -> None:
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock = _subscriber(self._ctx, addr, avatar, curve, hwm)

    def recv(self, timeout_ms: int | None = None) -> Frame | None:
        """The next frame, or None after ``timeout_ms`` (None: wait for ever)."""
        if timeout_ms is not None and not self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return _frame(self._sock.recv_multipart())

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.recv()
            if frame is not None:
                yield frame

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()


class ClusterFrameSubscriber(FrameSubscriber):
    """One SUB socket on every replica's PUB of a cluster (engine/cluster/, docs/scaling.md): the address list is
    ``health``'s ``cluster.replicas[].frame_addr`` on ``command_addr``, read again every ``refresh_s``; a new replica
    is connected, a gone one disconnected (a SUB may connect to many PUBs). A single engine's health has no
    ``cluster``: then ``fallback_addr`` is used. Frames of a moved avatar come with a higher ``epoch``."""

    def __init__(self, command_addr: str, avatar: str | None = None, *, refresh_s: float = 1.0,
                 fallback_addr: str | None = None, curve: CurveClientKeys | None = None, hwm: int = 16,
                 context: zmq.Context | None = None) -> None:
        super().__init__(None, avatar, curve=curve, context=context, hwm=hwm)
        self._health = EngineClient(command_addr, timeout_ms=2000, retries=0, curve=curve, context=self._ctx)
        self.refresh_s, self.fallback_addr = refresh_s, fallback_addr
        self.addrs: set[str] = set()
        self._next_refresh = 0.0
        self.refresh()

    def refresh(self) -> set[str]:
        """Read the replica list now and follow it; the frame addresses connected. A missed health keeps the list."""
        self._next_refresh = time.monotonic() + self.refresh_s
        try:
            health = self._health.health()
        except EngineClientError:
            return self.addrs
        cluster = health.raw.get("cluster") or {}
        wanted = {r["frame_addr"] for r in cluster.get("replicas", []) if r.get("frame_addr")}
        if not cluster and self.fallback_addr:
            wanted = {self.fallback_addr}
        for addr in wanted - self.addrs:
            self._sock.connect(addr)
        for addr in self.addrs - wanted:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disconnect(addr)
        self.addrs = wanted
        return self.addrs

    def recv(self, timeout_ms: int | None = None) -> Frame | None:
        """The next frame from any replica, or None after ``timeout_ms``; the list is followed meanwhile."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            now = time.monotonic()
            if now >= self._next_refresh:
                self.refresh()
            wait = self._next_refresh - now if deadline is None else min(self._next_refresh, deadline) - now
            if self._sock.poll(max(0, int(wait * 1000)), zmq.POLLIN):
                return _frame(self._sock.recv_multipart())
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        self._health.close()
        super().close()


def _frame(parts: list[bytes]) -> Frame:
    if len(parts) != 3:
        raise BadReply(f"a frame has 3 parts, this one {len(parts)}")
    try:
        header = msgpack.unpackb(parts[1], raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise BadReply(f"a frame header that is not msgpack: {exc}") from None
    return Frame(parts[0].decode(), header if isinstance(header, dict) else {}, parts[2])


# ---------------------------------------------------------------------------------------------------- asyncio


@_with_helpers
class AsyncEngineClient:
    """asyncio client: a pool of REQ sockets (made on first use), a bounded wait with a deadline beyond it.

    The same command methods as EngineClient (one table, COMMANDS), awaitable.

    ``wait_ms`` bounds how long a caller waits for a free socket (default: the request timeout), ``max_waiting``
    how many may wait at once; past either, ``Overloaded``. Close with ``await aclose()``: it closes every socket
    and terminates the context off the event loop.
    """

    def __init__(self, addr: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, retries: int = 1, pool_size: int = 4,
                 max_waiting: int = 32, wait_ms: int | None = None, curve: CurveClientKeys | None = None,
                 context: zmq.asyncio.Context | None = None) -> None:
        self.addr, self.timeout_ms, self.retries, self.curve = addr, timeout_ms, retries, curve
        self.max_waiting = max_waiting
        self.wait_ms = timeout_ms if wait_ms is None else wait_ms
        self._own_ctx = context is None
        self._ctx = context or zmq.asyncio.Context()
        self._free: asyncio.LifoQueue[zmq.asyncio.Socket | None] = asyncio.LifoQueue()
        for _ in range(pool_size):
            self._free.put_nowait(None)
        self._open: set[zmq.asyncio.Socket] = set()
        self._waiting = 0
        self._closed = False

    async def __aenter__(self) -> AsyncEngineClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _connect(self) -> zmq.asyncio.Socket:
        sock = _socket(self._ctx, zmq.REQ, self.addr, self.curve)
        self._open.add(sock)
        return sock

    def _discard(self, sock: zmq.asyncio.Socket) -> None:
        self._open.discard(sock)
        sock.close(linger=0)

    async def _acquire(self, wait_ms: int) -> zmq.asyncio.Socket | None:
        if self._closed:
            raise EngineUnavailable("the client is closed")
        if self._free.empty() and self._waiting >= self.max_waiting:
            raise Overloaded(f"{self._waiting} requests are already waiting for the engine")
        self._waiting += 1
        try:
            return await asyncio.wait_for(self._free.get(), wait_ms / 1000)
        except TimeoutError:
            raise Overloaded(f"no engine socket free within {wait_ms} ms") from None
        finally:
            self._waiting -= 1

    async def request(self, message: Mapping[str, Any] | bytes, timeout_ms: int | None = None,
                      retries: int | None = None, wait_ms: int | None = None) -> dict[str, Any]:
        """One round trip with Lazy Pirate retries on a pooled socket; the reply map as sent."""
        payload = message if isinstance(message, bytes) else msgpack.packb(dict(message), use_bin_type=True)
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        tries = 1 + (self.retries if retries is None else retries)
        sock = await self._acquire(self.wait_ms if wait_ms is None else wait_ms)
        try:
            for _ in range(tries):
                if sock is None:
                    sock = self._connect()
                await sock.send(payload)
                if await sock.poll(timeout, zmq.POLLIN):
                    return _decode(await sock.recv())
                self._discard(sock)  # Lazy Pirate: a REQ socket that missed its reply is unusable
                sock = None
            raise EngineUnavailable(f"no reply from the engine at {self.addr} within {timeout} ms ({tries} tries)")
        except zmq.ZMQError as exc:  # the socket was closed under us (aclose) or the context terminated
            if sock is not None:
                self._discard(sock)
                sock = None
            raise EngineUnavailable(f"engine socket error: {exc}") from None
        except BaseException as exc:  # cancelled mid-request: the socket's state is unknown, so drop it
            if sock is not None:
                self._discard(sock)
                sock = None
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and self._closed and task is not None and not task.cancelling():
                # pyzmq cancels the poll of a socket closed by aclose(); the caller's task itself was not cancelled
                raise EngineUnavailable("the client was closed while the request waited") from None
            raise
        finally:
            if not self._closed:
                self._free.put_nowait(sock)

    async def call(self, cmd: str, timeout_ms: int | None = None, **fields_: Any) -> dict[str, Any]:
        """Any command, including ones without a helper yet (``speak``); raises EngineReplyError on ``ok: false``."""
        return check_reply(await self.request(build_message(cmd, fields_), timeout_ms))

    async def _send(self, spec: Command[Any, R], fields_: dict[str, Any]) -> R:
        return parse_reply(spec.reply, await self.call(spec.name, **fields_))

    async def wait_ready(self, timeout_s: float = 90.0, poll_s: float = 0.2) -> HealthReply:
        """Poll ``health`` until the engine says ``ok`` (it answers ``starting`` while models load)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise EngineUnavailable(f"the engine at {self.addr} was not ready within {timeout_s:g} s")
            with contextlib.suppress(EngineUnavailable):
                reply = await self.health(timeout_ms=min(left_ms, 1000))
                if _ready(reply):
                    return reply
            await asyncio.sleep(poll_s)

    async def clock_offset(self, samples: int = 5) -> ClockOffset:
        measured = []
        for _ in range(max(1, samples)):
            sent = time.monotonic()
            now = (await self.health()).now
            measured.append((sent, now, time.monotonic()))
        return _best_offset(measured)

    def subscribe(self, frame_addr: str, avatar: str | None = None) -> AsyncFrameSubscriber:
        return AsyncFrameSubscriber(frame_addr, avatar, curve=self.curve)  # own context: closes independently

    async def aclose(self) -> None:
        """Close every socket (also those held by requests in flight), then term the context off the loop."""
        self._closed = True
        for sock in list(self._open):
            self._discard(sock)
        if self._own_ctx:
            await asyncio.to_thread(self._ctx.term)


class AsyncFrameSubscriber:
    """``async for frame in sub`` over ``frame.<avatar>`` (or every avatar); ``recv`` takes a timeout."""

    def __init__(self, addr: str, avatar: str | None = None, *, curve: CurveClientKeys | None = None,
                 context: zmq.asyncio.Context | None = None, hwm: int = 4) -> None:
        self._own_ctx = context is None
        self._ctx = context or zmq.asyncio.Context()
        self._sock = _subscriber(self._ctx, addr, avatar, curve, hwm)

    async def recv(self, timeout_ms: int | None = None) -> Frame | None:
        if timeout_ms is not None and not await self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return _frame(await self._sock.recv_multipart())

    async def recv_latest(self, timeout_ms: int | None = None) -> Frame | None:
        """The newest frame already queued (older ones dropped): a slow consumer (a browser) then sees a lower
        rate, never a growing delay. Raises BadReply for a malformed newest frame."""
        if timeout_ms is not None and not await self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        parts = await self._sock.recv_multipart()
        while True:
            try:
                parts = await self._sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return _frame(parts)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        while True:
            frame = await self.recv()
            if frame is not None:
                yield frame

    async def __aenter__(self) -> AsyncFrameSubscriber:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._sock.close(linger=0)
        if self._own_ctx:
            await asyncio.to_thread(self._ctx.term)


__all__ = [
    "AsyncEngineClient", "AsyncFrameSubscriber", "AudioMessage", "AvatarReply", "AvatarsReply", "BadReply",
    "ClockOffset", "ClusterFrameSubscriber", "CurveClientKeys", "EngineClient", "EngineClientError",
    "EngineReplyError", "EngineUnavailable", "ExpressionsReply", "Frame", "FrameSubscriber", "HealthReply", "Keyframe",
    "Overloaded", "RenderReply", "Reply", "SourceReply", "StreamReply", "build_message", "check_reply", "parse_audio",
    "parse_reply",
]
