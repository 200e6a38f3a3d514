"""WHEP (WebRTC-HTTP egress, RFC 9725) on the bridge: the avatar's face and voice as one WebRTC stream.

``POST /whep/{avatar}`` (``/whep``: the default avatar) with an SDP offer (``application/sdp``) answers ``201`` with
the SDP answer and a ``Location`` (``/whep/session/{id}``) that ``DELETE`` ends. A browser, OBS (WHEP source) or
GStreamer's ``whepsrc`` plays it. The media come from bridge/media.py (one feed per avatar, both tracks on the
engine clock); this module holds the sessions, their limits and their ends:

- viewers per bridge and per avatar are bounded (503 + Retry-After beyond them): an offer's session is listed under
  a lock at once (the limits hold under a burst), its SDP negotiated and its ICE candidates gathered outside it;
- refusals are raised (engine/errors.py's types) and answered by the bridge's handlers like every other route's;
  the offer is read by the bridge's body reader (byte cap, timeout); CORS is Starlette's middleware, for the origins
  of ``--whep-cors-origins`` only (none by default: a page elsewhere can neither open nor end a session);
- a session id is a secret (``Location`` gives it to its viewer alone): stats and logs show a short hash of it, and
  DELETE compares it in constant time;
- a session ends on DELETE, on ICE/DTLS failure or close (a closed tab: consent freshness or DTLS close_notify),
  and if it never connects within ``--whep-connect-timeout-s``; its peer connection is closed and dropped, and the
  avatar's feed (SUB socket, task) goes with its last viewer;
- ICE: host candidates only, unless ``--whep-ice-servers`` names STUN/TURN servers; host candidates only on the
  addresses ``--whep-ice-addresses`` lists (default: the bridge's own ``--host`` when it is one address, so a bridge
  on 127.0.0.1 offers 127.0.0.1 only). aioice reads the host's interfaces itself and leaves out loopback, so the
  allowed list replaces its address lookup (``aioice.ice.get_host_addresses``). That, the consent interval and the
  encoders' bitrate are process-wide constants of aioice/aiortc: set by the feature's lifespan, undone after it;
- every background task (connect deadlines, ends, late-sender stops) is kept and cancelled when the bridge stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aioice.ice
import zmq.asyncio
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import h264, vpx
from aiortc.exceptions import InvalidStateError
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.feature import AVATAR_RE, Feature
from bridge.forms import drain, read_body
from bridge.media import AvatarFeed, FeedAudioTrack, FeedVideoTrack
from bridge.openapi import Answer, Operation
from engine.client import EngineClientError
from engine.errors import (
    BadSdp,
    EngineError,
    EngineUnavailableError,
    NotFound,
    TooManyViewers,
    UnknownAvatar,
    UnsupportedMediaType,
)
from engine.options import Option
from engine.stats import percentile

if TYPE_CHECKING:
    from bridge.app import Bridge

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
EXPOSED_HEADERS = ["Location", "ETag", "X-Playout-Delay-Ms"]
CODECS = {"vp8": "video/VP8", "h264": "video/H264"}


# The WebRTC viewers' limits, ICE and codec. VP8 at 800 kbps: on this CPU VP8 encodes a 512 x 512 frame in ~2 ms
# (p50, quiet or loaded), libx264 (aiortc's H.264) in 5 ms quiet and 12-16 ms loaded, and each viewer costs one
# encode (bench/bench_webrtc.py).
WHEP_OPTIONS: tuple[Option, ...] = (
    Option("whep_max_viewers", "--whep-max-viewers", "LP_WHEP_MAX_VIEWERS", int, 8,
           "WebRTC (WHEP) viewers on this bridge at once; beyond it 503 + Retry-After"),
    Option("whep_max_per_avatar", "--whep-max-per-avatar", "LP_WHEP_MAX_PER_AVATAR", int, 4,
           "WHEP viewers of one avatar at once (each costs one video encode)"),
    Option("whep_ice_servers", "--whep-ice-servers", "LP_WHEP_ICE_SERVERS", str, "",
           "STUN/TURN servers, comma-separated (stun:host:port, turn:user:pass@host:port); empty: host candidates "
           "only, nothing outside is contacted"),
    Option("whep_ice_addresses", "--whep-ice-addresses", "LP_WHEP_ICE_ADDRESSES", str, "",
           "local addresses WHEP may offer as ICE host candidates, comma-separated; empty: --host if it is one "
           "address, else every interface"),
    Option("whep_codec", "--whep-codec", "LP_WHEP_CODEC", str, "vp8", "WHEP video codec", ("vp8", "h264")),
    Option("whep_bitrate_kbps", "--whep-bitrate-kbps", "LP_WHEP_BITRATE_KBPS", int, 800,
           "WHEP video bitrate ceiling (the receiver's estimate may lower it)"),
    Option("whep_delay_ms", "--whep-delay-ms", "LP_WHEP_DELAY_MS", int, 100,
           "media of engine time t go out at t + this at least (more while frames arrive later): covers render, "
           "JPEG and transport of the frames"),
    Option("whep_fps", "--whep-fps", "LP_WHEP_FPS", float, 25.0,
           "frame rate WHEP starts an avatar's engine stream at when it is not streaming"),
    Option("whep_connect_timeout_s", "--whep-connect-timeout-s", "LP_WHEP_CONNECT_TIMEOUT_S", float, 20.0,
           "a WHEP session not connected by then (a player that vanished after its POST) is closed"),
    Option("whep_consent_timeout_s", "--whep-consent-timeout-s", "LP_WHEP_CONSENT_TIMEOUT_S", float, 30.0,
           "a viewer that stops answering ICE consent checks (a closed tab, a lost network) is closed after about "
           "this long (RFC 7675: 30 s)"),
    Option("whep_cors_origins", "--whep-cors-origins", "LP_WHEP_CORS_ORIGINS", str, "",
           "pages of these origins (scheme://host:port, comma-separated, or *) may use WHEP from another origin; "
           "empty: the bridge's own pages only"),
)


@dataclass(frozen=True)
class WhepSettings:
    whep_max_viewers: int = 8
    whep_max_per_avatar: int = 4
    whep_ice_servers: str = ""
    whep_ice_addresses: str = ""
    whep_codec: str = "vp8"
    whep_bitrate_kbps: int = 800
    whep_delay_ms: int = 100
    whep_fps: float = 25.0
    whep_connect_timeout_s: float = 20.0
    whep_consent_timeout_s: float = 30.0
    whep_cors_origins: str = ""


@dataclass
class Session:
    """One viewer. ``id`` is its secret (the DELETE capability): logs and stats show ``session_tag(id)``."""

    id: str
    avatar: str
    feed: AvatarFeed
    pc: RTCPeerConnection
    video: FeedVideoTrack
    audio: FeedAudioTrack
    created: float = field(default_factory=time.monotonic)
    closed: bool = False
    watch: asyncio.Task[None] | None = None  # the connect deadline: cancelled at the end


def ice_addresses(settings: WhepSettings, host: str) -> list[str]:
    """The addresses host candidates may use: the option, else the bridge's own host if it is one address."""
    listed = [a.strip() for a in settings.whep_ice_addresses.split(",") if a.strip()]
    if listed:
        return listed
    with contextlib.suppress(ValueError):
        if not ipaddress.ip_address(host).is_unspecified:
            return [host]
    return []  # every interface (aioice's own choice)


def ice_servers(settings: WhepSettings) -> list[RTCIceServer]:
    """``stun:host:port`` or ``turn:user:pass@host:port`` entries, comma-separated; none by default."""
    servers = []
    for entry in (e.strip() for e in settings.whep_ice_servers.split(",") if e.strip()):
        if entry.startswith(("turn:", "turns:")) and "@" in entry:
            scheme, rest = entry.split(":", 1)
            creds, host = rest.rsplit("@", 1)
            user, _, password = creds.partition(":")
            servers.append(RTCIceServer(f"{scheme}:{host}", username=user, credential=password))
        else:
            servers.append(RTCIceServer(entry))
    return servers


@contextlib.contextmanager
def patched(module: Any, **values: Any) -> Iterator[None]:
    """Module attributes set for a while and put back: aioice and aiortc read these constants at use."""
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


@contextlib.contextmanager
def stack_patches(settings: WhepSettings, allowed: list[str]) -> Iterator[None]:
    """The WebRTC stack's process-wide knobs, set while the feature runs and undone after (one bridge per process):

    - host candidates only on ``allowed`` (aioice reads the host's interfaces itself and leaves out loopback);
    - ICE consent checked every ``consent / 6`` s (aioice gives up after 6 failed checks);
    - the encoders' start and ceiling bitrate (aiortc's DEFAULT_BITRATE and MAX_BITRATE; REMB moves in between)."""
    def only_allowed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in allowed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    interval = max(0.2, settings.whep_consent_timeout_s / aioice.ice.CONSENT_FAILURES)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(aioice.ice, CONSENT_INTERVAL=interval))
        if allowed:
            stack.enter_context(patched(aioice.ice, get_host_addresses=only_allowed))
        bps = max(settings.whep_bitrate_kbps * 1000, 1)
        for module in (vpx, h264):
            ceiling = max(bps, module.MIN_BITRATE)
            stack.enter_context(patched(module, MAX_BITRATE=ceiling,
                                        DEFAULT_BITRATE=min(module.DEFAULT_BITRATE, ceiling)))
        yield


def session_tag(session_id: str) -> str:
    """What stats and logs show of a session: a short hash of its id (the id itself is the DELETE capability)."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:8]


def cors_origins(settings: WhepSettings) -> list[str]:
    return [o.strip() for o in settings.whep_cors_origins.split(",") if o.strip()]


@dataclass
class FeedSlot:
    """An avatar's feed and how many sessions (negotiating or open) use it: the last one out closes it."""

    feed: AvatarFeed
    users: int = 0


class Whep:
    """The sessions, the per-avatar feeds and the limits; the routes' handlers. One per bridge
    (``bridge.feature_state["whep"]``); its tasks, feeds and ZMQ context end with the feature's lifespan."""

    def __init__(self, bridge: Bridge, settings: WhepSettings) -> None:
        self.bridge = bridge
        self.settings = settings
        self.sessions: dict[str, Session] = {}  # by id; a session is listed from its reservation on
        self.feeds: dict[str, FeedSlot] = {}
        self.started_streams: set[str] = set()  # avatars whose engine stream the WHEP viewers started
        self.opened = 0
        self.closed = 0
        self.ice_addresses = ice_addresses(settings, bridge.settings.host)
        self._lock = asyncio.Lock()  # sessions and feeds: held for bookkeeping only, never across a network wait
        self._stream_lock = asyncio.Lock()  # engine stream start/stop, in order
        self.tasks: set[asyncio.Task[Any]] = set()
        self._ctx: zmq.asyncio.Context | None = None  # one for every feed's SUB socket

    # -- life cycle --

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task, kept until done and cancelled by ``aclose``."""
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await self.end(session, "bridge stopping")
        tasks = [t for t in self.tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ctx is not None:  # every socket is closed: term returns at once, but never on the event loop
            ctx, self._ctx = self._ctx, None
            await asyncio.to_thread(ctx.term)

    # -- routes --

    async def offer(self, request: Request) -> Response:
        limits = self.bridge.limits
        if not request.headers.get("content-type", "").lower().startswith("application/sdp"):
            await drain(request, limits)
            raise UnsupportedMediaType("the body must be an SDP offer (application/sdp)")
        body = await read_body(request, MAX_SDP_BYTES, limits)
        try:
            sdp = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadSdp("the SDP offer is not UTF-8 text") from None
        if "v=0" not in sdp or "m=" not in sdp:
            raise BadSdp("not an SDP offer (no v=0 / m= lines)")
        avatar = await self._avatar(request.path_params.get("avatar"))
        session = await self._reserve(avatar)
        try:
            answer = await self._negotiate(session, sdp)
        except Exception as exc:
            if session.closed:  # ended meanwhile (the bridge is stopping): not the offer's fault
                raise EngineUnavailableError("the bridge is stopping") from None
            await self.end(session, "offer refused")
            raise BadSdp(f"the SDP offer was refused: {exc}") from None
        await self._ensure_stream(avatar)
        if session.closed:  # the bridge stopped meanwhile
            raise EngineUnavailableError("the bridge is stopping")
        headers = {"Location": f"/whep/session/{session.id}", "ETag": f'"{session_tag(session.id)}"',
                   "X-Playout-Delay-Ms": str(round(session.feed.delay_s * 1000))}
        return Response(answer, 201, media_type="application/sdp", headers=headers)

    async def delete(self, request: Request) -> Response:
        session = self._find(request.path_params["session"])
        if session is None:
            raise NotFound("no such WHEP session (ended already?)")
        await self.end(session, "DELETE")
        return Response(status_code=200)

    async def options(self, request: Request) -> Response:
        return Response(status_code=204, headers={"Accept-Post": "application/sdp"})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(stats_body(self))

    # -- sessions --

    async def _avatar(self, raw: str | None) -> str:
        """The avatar named (or the default): the engine's errors go to the bridge's handlers (503 Retry-After)."""
        link = self.bridge.link
        avatars = await link.run(link.work.call("list_avatars"))
        avatar = raw or avatars.get("default")
        if not isinstance(avatar, str) or not AVATAR_RE.match(avatar) or avatar not in avatars.get("avatars", []):
            raise UnknownAvatar(f"no avatar {raw!r} on the engine")
        return avatar

    def _find(self, given: str) -> Session | None:
        """The session whose id is ``given``, compared in constant time (every id is compared)."""
        found = None
        for session in list(self.sessions.values()):
            if hmac.compare_digest(session.id.encode(), given.encode()):
                found = session
        return found

    async def _reserve(self, avatar: str) -> Session:
        """Under the lock: the limits checked and a session listed at once (so they hold under a burst), its feed
        taken (made if it is the first). Nothing here waits on the network."""
        async with self._lock:
            s = self.settings
            if len(self.sessions) >= s.whep_max_viewers:
                raise TooManyViewers(f"at most {s.whep_max_viewers} WHEP viewers on this bridge")
            if sum(1 for x in self.sessions.values() if x.avatar == avatar) >= s.whep_max_per_avatar:
                raise TooManyViewers(f"at most {s.whep_max_per_avatar} WHEP viewers per avatar")
            slot = self.feeds.get(avatar)
            if slot is None:
                slot = self.feeds[avatar] = FeedSlot(self._new_feed(avatar))
            slot.users += 1
            pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self.settings)))  # [] = no STUN at all
            session = Session(secrets.token_urlsafe(24), avatar, slot.feed, pc, FeedVideoTrack(slot.feed),
                              FeedAudioTrack(slot.feed))
            self.sessions[session.id] = session
            self.opened += 1
        session.watch = self.spawn(self._connect_deadline(session), f"whep-deadline-{session_tag(session.id)}")
        return session

    async def _negotiate(self, session: Session, sdp: str) -> str:
        """Outside the lock: our transceivers (codec preference first: aiortc picks codecs in
        setRemoteDescription), the offer, the answer with every ICE candidate gathered."""
        pc = session.pc
        video = pc.addTransceiver(session.video, direction="sendonly")
        wanted = CODECS[self.settings.whep_codec]
        video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                   if c.mimeType in (wanted, "video/rtx")])
        pc.addTransceiver(session.audio, direction="sendonly")
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        if video.mid is None:
            raise ValueError("the offer has no video m-line")
        await pc.setLocalDescription(await pc.createAnswer())

        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState in ("failed", "closed") and not session.closed:
                self.spawn(self.end(session, f"connection {pc.connectionState}"), "whep-end")

        assert pc.localDescription is not None
        log.info("whep session %s for %s opened (%d open)", session_tag(session.id), session.avatar,
                 len(self.sessions))
        return pc.localDescription.sdp

    async def _connect_deadline(self, session: Session) -> None:
        await asyncio.sleep(self.settings.whep_connect_timeout_s)
        if session.pc.connectionState != "connected":
            await self.end(session, "never connected")

    def _new_feed(self, avatar: str) -> AvatarFeed:
        link = self.bridge.link

        async def offset() -> float:
            return (await link.run(link.probes.clock_offset(3))).offset

        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        feed = AvatarFeed(avatar, self._ctx, self.bridge.settings.frame_addr, link.work.curve, offset,
                          self.settings.whep_delay_ms / 1000.0)
        feed.start()
        return feed

    async def _ensure_stream(self, avatar: str) -> None:
        """The engine streams the avatar while it has viewers (started at ``whep_fps`` if it was not; stopped with
        the last viewer). Starts and stops are serialised, each deciding on the viewers it sees then."""
        link = self.bridge.link
        async with self._stream_lock:
            if avatar not in self.feeds:
                return
            with contextlib.suppress(EngineClientError):
                streams = (await link.run(link.work.call("list_avatars"))).get("streams", {})
                if avatar not in streams:
                    await link.run(link.work.call("stream", avatar=avatar, fps=self.settings.whep_fps))
                    self.started_streams.add(avatar)

    async def _stop_stream(self, avatar: str) -> None:
        async with self._stream_lock:
            if avatar in self.feeds or avatar not in self.started_streams:
                return
            self.started_streams.discard(avatar)
            with contextlib.suppress(EngineError, EngineClientError):
                link = self.bridge.link
                await link.run(link.work.call("stream", avatar=avatar, fps=0))

    async def end(self, session: Session, why: str) -> None:
        """Unlisted and its feed released under the lock; the peer connection and a feed nobody uses are closed
        after it."""
        async with self._lock:
            if session.closed:
                return
            session.closed = True
            self.sessions.pop(session.id, None)
            self.closed += 1
            slot = self.feeds.get(session.avatar)
            unused = None
            if slot is not None and slot.feed is session.feed:
                slot.users -= 1
                if slot.users <= 0:
                    unused = self.feeds.pop(session.avatar).feed
        if session.watch is not None and session.watch is not asyncio.current_task():
            session.watch.cancel()
        session.video.stop()
        session.audio.stop()
        with contextlib.suppress(Exception):
            await session.pc.close()
        self.spawn(_stop_late_senders(session.pc), "whep-late-senders")
        log.info("whep session %s ended: %s (%d open)", session_tag(session.id), why, len(self.sessions))
        if unused is not None:
            await unused.close()
            await self._stop_stream(session.avatar)

    # -- wiring --

    def routes(self) -> list[BaseRoute]:
        """Errors are raised to the bridge's exception handlers; PATCH (trickle ICE) is not offered: 405."""
        return [
            Route("/whep", self.offer, methods=["POST"]),
            Route("/whep", self.options, methods=["OPTIONS"]),
            Route("/whep/session", self.stats, methods=["GET"]),
            Route("/whep/session/{session}", self.delete, methods=["DELETE"]),
            Route("/whep/session/{session}", self.options, methods=["OPTIONS"]),
            Route("/whep/{avatar}", self.offer, methods=["POST"]),
            Route("/whep/{avatar}", self.options, methods=["OPTIONS"]),
        ]


def stats_body(whep: Whep) -> dict[str, Any]:
    """Counts, limits and per-session figures; a session is shown by its tag (a short hash), never its id."""
    per_avatar: dict[str, int] = {}
    for s in whep.sessions.values():
        per_avatar[s.avatar] = per_avatar.get(s.avatar, 0) + 1
    return {
        "sessions": len(whep.sessions), "feeds": len(whep.feeds), "per_avatar": per_avatar,
        "opened": whep.opened, "closed": whep.closed, "tasks": len(whep.tasks),
        "limits": {"viewers": whep.settings.whep_max_viewers,
                   "per_avatar": whep.settings.whep_max_per_avatar},
        "codec": whep.settings.whep_codec, "ice_addresses": whep.ice_addresses,
        "detail": [{"tag": session_tag(s.id), "avatar": s.avatar, "state": s.pc.connectionState,
                    "video_sent": s.video.sent, "video_skipped": s.video.skipped,
                    "video_late_ms_p95": _pct(list(s.video._paced.late_ms), 95),
                    "audio_late_ms_p50": _pct(list(s.audio._paced.late_ms), 50),
                    "audio_late_ms_p95": _pct(list(s.audio._paced.late_ms), 95),
                    "video_lead_ms": round(s.video._paced.lead * 1000, 1),
                    "audio_origin": s.audio.origin, "age_s": round(time.monotonic() - s.created, 1)}
                   for s in whep.sessions.values()],
        "feed_detail": {a: {"frames": f.stats.frames, "bad": f.stats.bad, "audio_messages": f.audio.received,
                            "audio_lost": f.audio.lost, "offset_s": f.offset,
                            "delay_ms": round(f.delay_s * 1000, 1),
                            "frame_late_ms_p50": _pct(f.stats.late_ms, 50),
                            "frame_late_ms_p95": _pct(f.stats.late_ms, 95)}
                        for a, f in ((a, slot.feed) for a, slot in whep.feeds.items())},
    }


LATE_SENDER_CHECKS_S = (0.5, 1.0, 2.0, 4.0)  # after a close, a sender started late is stopped at these times


async def _stop_late_senders(pc: RTCPeerConnection) -> None:
    """aiortc starts the second (bundled) sender in its connect task after the state already says connected: a
    close in between stops nothing for it, and its RTCP task then runs for ever, holding the whole session (the
    bridge's RSS grew ~0.4 MB per quick connect/disconnect). Stop every sender again while that task may finish."""
    for pause in LATE_SENDER_CHECKS_S:
        await asyncio.sleep(pause)
        for transceiver in pc.getTransceivers():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(transceiver.sender.stop(), 2.0)


def _pct(values: list[float], q: int) -> float:
    return round(percentile(values, q), 1)


SDP_BODY = {"required": True, "content": {"application/sdp": {"schema": {"type": "string"}}}}
WHEP_ANSWERS = (Answer(201, "the SDP answer; Location: /whep/session/{id} (DELETE ends it)", "application/sdp",
                       {"type": "string"}, ("Location", "ETag", "X-Playout-Delay-Ms")),
                Answer(400, "not an SDP offer, or one aiortc refuses"), Answer(404, "unknown avatar"),
                Answer(408, "the offer did not arrive in time"),
                Answer(413, "offer over 64 KiB"), Answer(415, "not application/sdp"),
                Answer(503, "too many viewers, or the engine is unavailable; retry after Retry-After seconds",
                       headers=("Retry-After",)))
OPTIONS_ANSWER = (Answer(204, "what the endpoint accepts (Accept-Post: application/sdp)", headers=("Accept-Post",)),)
WHEP_OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/whep", "WHEP: the default avatar's face and voice as WebRTC (VP8/H.264 + Opus)",
              WHEP_ANSWERS, SDP_BODY),
    Operation("options", "/whep", "WHEP endpoint options", OPTIONS_ANSWER),
    Operation("post", "/whep/{avatar}", "WHEP: one avatar's face and voice as WebRTC", WHEP_ANSWERS, SDP_BODY),
    Operation("options", "/whep/{avatar}", "WHEP endpoint options", OPTIONS_ANSWER),
    Operation("delete", "/whep/session/{session}", "End a WHEP session (the id is its Location's secret)", (
        Answer(200, "ended"), Answer(404, "no such session"))),
    Operation("options", "/whep/session/{session}", "WHEP session options", OPTIONS_ANSWER),
    Operation("get", "/whep/session", "Counts of the open WHEP sessions and feeds, the limits, per-session figures "
              "(each session by a short hash, never its id)", (
        Answer(200, "counts, limits and per-session figures", schema={"type": "object"}),)),
)


def whep_of(bridge: Bridge) -> Whep:
    """The bridge's WHEP state (made on first use, kept on the bridge)."""
    whep = bridge.feature_state.get("whep")
    if whep is None:
        whep = bridge.feature_state["whep"] = Whep(bridge, bridge.settings_of(WHEP))
    return whep


class WhepCors:
    """Starlette's CORSMiddleware on the WHEP paths, allowing the origins of ``--whep-cors-origins`` (none by
    default: only the bridge's own pages, so a page elsewhere can neither open a session nor end one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cors: CORSMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/whep"):
            await self.app(scope, receive, send)
            return
        if self._cors is None:
            settings = scope["app"].state.bridge.settings_of(WHEP)
            self._cors = CORSMiddleware(self.app, allow_origins=cors_origins(settings),
                                        allow_methods=["POST", "DELETE", "OPTIONS"], allow_headers=["Content-Type"],
                                        expose_headers=EXPOSED_HEADERS)
        await self._cors(scope, receive, send)


def _closed_during_connect(context: dict[str, Any]) -> bool:
    """aiortc starts each session's transports in a task nobody awaits (``RTCPeerConnection.__connect``); a viewer
    that leaves while it runs (DELETE right after connecting, a tab closed) makes it raise InvalidStateError, which
    asyncio would log as an ERROR with a traceback per such viewer. That end is expected and already handled."""
    task = context.get("future")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    return (isinstance(context.get("exception"), InvalidStateError)
            and getattr(coro, "__qualname__", "") == "RTCPeerConnection.__connect")


@asynccontextmanager
async def _lifespan(bridge: Bridge) -> AsyncIterator[None]:
    """The WebRTC stack's patches applied, and undone after every session, task and feed is closed (before the
    engine link is); aiortc's expected connect-task errors kept out of the error log while the feature runs."""
    whep = whep_of(bridge)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _closed_during_connect(context):
            log.debug("a WHEP viewer left while aiortc was connecting: %s", context.get("exception"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        with stack_patches(whep.settings, whep.ice_addresses):
            try:
                yield
            finally:
                await whep.aclose()
    finally:
        loop.set_exception_handler(previous)


WHEP = Feature("whep", routes=lambda bridge: whep_of(bridge).routes(), operations=WHEP_OPERATIONS,
               options=WHEP_OPTIONS, settings=WhepSettings, middleware=(Middleware(WhepCors),), lifespan=_lifespan)
