"""WHEP (WebRTC-HTTP egress, RFC 9725) on the bridge: the avatar's face and voice as one WebRTC stream.

``POST /whep/{avatar}`` (``/whep``: the default avatar) with an SDP offer (``application/sdp``) answers ``201`` with
the SDP answer and a ``Location`` (``/whep/session/{id}``) that ``DELETE`` ends. A browser, OBS (WHEP source) or
GStreamer's ``whepsrc`` plays it. The media come from bridge/media.py (one feed per avatar, both tracks on the
engine clock); this module holds the sessions, their limits and their ends:

- viewers per bridge and per avatar are bounded (503 + Retry-After beyond them);
- a session ends on DELETE, on ICE/DTLS failure or close (a closed tab: consent freshness or DTLS close_notify),
  and if it never connects within ``--whep-connect-timeout-s``; its peer connection is closed and dropped, and the
  avatar's feed (SUB socket, task) goes with its last viewer;
- ICE: host candidates only, unless ``--whep-ice-servers`` names STUN/TURN servers; host candidates only on the
  addresses ``--whep-ice-addresses`` lists (default: the bridge's own ``--host`` when it is one address, so a bridge
  on 127.0.0.1 offers 127.0.0.1 only). aioice reads the host's interfaces itself and leaves out loopback, so the
  allowed list replaces its address lookup (``aioice.ice.get_host_addresses``, process-wide, one bridge per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import h264, vpx
from aiortc.exceptions import InvalidStateError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.app import Bridge
from bridge.feature import AVATAR_RE, Feature
from bridge.media import AvatarFeed, FeedAudioTrack, FeedVideoTrack
from bridge.openapi import Answer, Operation
from engine.client import EngineClientError
from engine.errors import HTTP_STATUS, EngineError
from engine.options import Option
from engine.stats import percentile

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
RETRY_AFTER_S = "5"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location, ETag, X-Playout-Delay-Ms",
        "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS", "Access-Control-Allow-Headers": "Content-Type"}
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


@dataclass
class Session:
    id: str
    avatar: str
    pc: RTCPeerConnection
    video: FeedVideoTrack
    audio: FeedAudioTrack
    created: float = field(default_factory=time.monotonic)
    closed: bool = False
    deadline: asyncio.TimerHandle | None = None  # the connect timeout: cancelled at the end (it holds the session)


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


def _restrict_host_addresses(allowed: list[str]) -> None:
    if not allowed:
        return
    original = getattr(aioice.ice.get_host_addresses, "__wrapped__", aioice.ice.get_host_addresses)

    def only_allowed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in allowed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    only_allowed.__wrapped__ = original  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = only_allowed


def _set_bitrate(kbps: int) -> None:
    """aiortc's encoders start at their DEFAULT_BITRATE and follow the receiver's REMB up to MAX_BITRATE; both are
    module constants, so the option sets them (one bridge per process)."""
    bps = kbps * 1000
    for module in (vpx, h264):
        module.DEFAULT_BITRATE = min(bps, module.DEFAULT_BITRATE) if bps >= module.MIN_BITRATE else module.MIN_BITRATE
        module.MAX_BITRATE = max(bps, module.MIN_BITRATE)
        module.DEFAULT_BITRATE = min(module.DEFAULT_BITRATE, module.MAX_BITRATE)


class WhepError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Whep:
    """The sessions, the per-avatar feeds and the limits; the routes' handlers."""

    def __init__(self, bridge: Bridge, settings: WhepSettings) -> None:
        self.bridge = bridge
        self.settings = settings
        self.sessions: dict[str, Session] = {}
        self.feeds: dict[str, AvatarFeed] = {}
        self.started_streams: set[str] = set()  # avatars whose engine stream the WHEP viewers started
        self.opened = 0
        self.closed = 0
        self._lock = asyncio.Lock()
        self.ice_addresses = ice_addresses(settings, bridge.settings.host)
        _restrict_host_addresses(self.ice_addresses)
        _set_bitrate(settings.whep_bitrate_kbps)

    # -- life cycle --

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await self.end(session, "bridge stopping")
        for feed in list(self.feeds.values()):
            await feed.close()
        self.feeds.clear()

    # -- routes --

    async def offer(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").lower().startswith("application/sdp"):
            raise WhepError(415, "unsupported_media_type", "the body must be an SDP offer (application/sdp)")
        body = await _read(request, MAX_SDP_BYTES)
        try:
            sdp = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WhepError(400, "bad_sdp", "the SDP offer is not UTF-8 text") from None
        if "v=0" not in sdp or "m=" not in sdp:
            raise WhepError(400, "bad_sdp", "not an SDP offer (no v=0 / m= lines)")
        avatar = await self._avatar(request, request.path_params.get("avatar"))
        async with self._lock:  # the count and the new session together, so the limits hold under a burst
            self._check_limits(avatar)
            session = await self._open(avatar, sdp)
        await self._ensure_stream(request, avatar)
        assert session.pc.localDescription is not None
        headers = {**CORS, "Location": f"/whep/session/{session.id}", "ETag": f'"{session.id}"',
                   "X-Playout-Delay-Ms": str(round(self.feeds[avatar].delay_s * 1000))}
        return Response(session.pc.localDescription.sdp, 201, media_type="application/sdp", headers=headers)

    async def delete(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session"])
        if session is None:
            raise WhepError(404, "not_found", "no such WHEP session (ended already?)")
        await self.end(session, "DELETE")
        return Response(status_code=200, headers=CORS)

    async def patch(self, request: Request) -> Response:
        raise WhepError(405, "method_not_allowed", "no trickle ICE: the answer carries every candidate",
                        {"Allow": "DELETE"})

    async def options(self, request: Request) -> Response:
        return Response(status_code=204, headers={**CORS, "Accept-Post": "application/sdp"})

    async def stats(self, request: Request) -> Response:
        per_avatar: dict[str, int] = {}
        for s in self.sessions.values():
            per_avatar[s.avatar] = per_avatar.get(s.avatar, 0) + 1
        return JSONResponse({
            "sessions": len(self.sessions), "feeds": len(self.feeds), "per_avatar": per_avatar,
            "opened": self.opened, "closed": self.closed,
            "limits": {"viewers": self.settings.whep_max_viewers,
                       "per_avatar": self.settings.whep_max_per_avatar},
            "codec": self.settings.whep_codec, "ice_addresses": self.ice_addresses,
            "detail": [{"id": s.id, "avatar": s.avatar, "state": s.pc.connectionState, "video_sent": s.video.sent,
                        "video_skipped": s.video.skipped,
                        "video_late_ms_p95": _pct(list(s.video._paced.late_ms), 95),
                        "audio_late_ms_p50": _pct(list(s.audio._paced.late_ms), 50),
                        "audio_late_ms_p95": _pct(list(s.audio._paced.late_ms), 95),
                        "video_lead_ms": round(s.video._paced.lead * 1000, 1),
                        "audio_origin": s.audio.origin, "age_s": round(time.monotonic() - s.created, 1)}
                       for s in self.sessions.values()],
            "feed_detail": {a: {"frames": f.stats.frames, "bad": f.stats.bad, "audio_messages": f.audio.received,
                                "audio_lost": f.audio.lost, "offset_s": f.offset,
                                "delay_ms": round(f.delay_s * 1000, 1),
                                "frame_late_ms_p50": _pct(f.stats.late_ms, 50),
                                "frame_late_ms_p95": _pct(f.stats.late_ms, 95)}
                            for a, f in self.feeds.items()},
        }, headers=CORS)

    # -- sessions --

    async def _avatar(self, request: Request, raw: str | None) -> str:
        link = self.bridge.link
        try:
            avatars = await link.run(link.work.call("list_avatars"))
        except EngineClientError as exc:
            raise WhepError(503, "engine_unavailable", exc.message, {"Retry-After": RETRY_AFTER_S}) from None
        avatar = raw or avatars.get("default")
        if not isinstance(avatar, str) or not AVATAR_RE.match(avatar) or avatar not in avatars.get("avatars", []):
            raise WhepError(404, "unknown_avatar", f"no avatar {raw!r} on the engine")
        return avatar

    def _check_limits(self, avatar: str) -> None:
        s = self.settings
        if len(self.sessions) >= s.whep_max_viewers:
            raise WhepError(503, "too_many_viewers", f"at most {s.whep_max_viewers} WHEP viewers on this bridge",
                            {"Retry-After": RETRY_AFTER_S})
        if sum(1 for x in self.sessions.values() if x.avatar == avatar) >= s.whep_max_per_avatar:
            raise WhepError(503, "too_many_viewers", f"at most {s.whep_max_per_avatar} WHEP viewers per avatar",
                            {"Retry-After": RETRY_AFTER_S})

    async def _open(self, avatar: str, sdp: str) -> Session:
        feed = self._feed(avatar)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self.settings)))  # [] = no STUN at all
        session = Session(secrets.token_urlsafe(12), avatar, pc, FeedVideoTrack(feed), FeedAudioTrack(feed))
        try:
            # our transceivers first, with the codec preference: aiortc picks the codecs in setRemoteDescription
            video = pc.addTransceiver(session.video, direction="sendonly")
            wanted = CODECS[self.settings.whep_codec]
            video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                       if c.mimeType in (wanted, "video/rtx")])
            pc.addTransceiver(session.audio, direction="sendonly")
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            if video.mid is None:
                raise ValueError("the offer has no video m-line")
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self._discard(session)
            if not any(s.avatar == avatar for s in self.sessions.values()):
                feed = self.feeds.pop(avatar, None)
                if feed is not None:
                    await feed.close()
            if isinstance(exc, WhepError):
                raise
            raise WhepError(400, "bad_sdp", f"the SDP offer was refused: {exc}") from None
        self.sessions[session.id] = session
        self.opened += 1

        @pc.on("connectionstatechange")
        async def changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.end(session, f"connection {pc.connectionState}")

        session.deadline = asyncio.get_running_loop().call_later(self.settings.whep_connect_timeout_s,
                                                                 self._connect_deadline, session)
        log.info("whep session %s for %s opened (%d open)", session.id, avatar, len(self.sessions))
        return session

    def _connect_deadline(self, session: Session) -> None:
        if not session.closed and session.pc.connectionState not in ("connected",):
            asyncio.ensure_future(self.end(session, "never connected"))

    def _feed(self, avatar: str) -> AvatarFeed:
        feed = self.feeds.get(avatar)
        if feed is None:
            link = self.bridge.link

            async def offset() -> float:
                return (await link.run(link.probes.clock_offset(3))).offset

            feed = AvatarFeed(avatar, self.bridge.settings.frame_addr, link.work.curve, offset,
                              self.settings.whep_delay_ms / 1000.0)
            feed.start()
            self.feeds[avatar] = feed
        return feed

    async def _ensure_stream(self, request: Request, avatar: str) -> None:
        """The engine streams the avatar (started at ``whep_fps`` if it was not; stopped with the last viewer)."""
        link = self.bridge.link
        with contextlib.suppress(EngineClientError):
            streams = (await link.run(link.work.call("list_avatars"))).get("streams", {})
            if avatar not in streams:
                await link.run(link.work.call("stream", avatar=avatar, fps=self.settings.whep_fps))
                self.started_streams.add(avatar)

    async def end(self, session: Session, why: str) -> None:
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.id, None)
        self.closed += 1
        await self._discard(session)
        log.info("whep session %s ended: %s (%d open)", session.id, why, len(self.sessions))
        if not any(s.avatar == session.avatar for s in self.sessions.values()):
            feed = self.feeds.pop(session.avatar, None)
            if feed is not None:
                await feed.close()
            if session.avatar in self.started_streams:
                self.started_streams.discard(session.avatar)
                with contextlib.suppress(Exception):
                    link = self.bridge.link
                    await link.run(link.work.call("stream", avatar=session.avatar, fps=0))

    async def _discard(self, session: Session) -> None:
        if session.deadline is not None:
            session.deadline.cancel()
            session.deadline = None
        session.video.stop()
        session.audio.stop()
        with contextlib.suppress(Exception):
            await session.pc.close()
        asyncio.ensure_future(_stop_late_senders(session.pc))

    # -- wiring --

    def guarded(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def wrapper(request: Request) -> Response:
            try:
                return await handler(request)
            except WhepError as err:
                return JSONResponse({"error": {"code": err.code, "message": err.message}}, err.status,
                                    headers={**CORS, **err.headers})
            except EngineError as exc:  # the bridge's own (engine down or starting)
                return JSONResponse({"error": exc.to_wire()}, HTTP_STATUS.get(exc.code, 500),
                                    headers={**CORS, "Retry-After": RETRY_AFTER_S})
            except Exception:
                log.exception("whep %s failed", request.url.path)
                return JSONResponse({"error": {"code": "internal", "message": "internal error"}}, 500,
                                    headers=CORS)
        return wrapper

    def routes(self) -> list[BaseRoute]:
        g = self.guarded
        return [
            Route("/whep", g(self.offer), methods=["POST"]),
            Route("/whep", g(self.options), methods=["OPTIONS"]),
            Route("/whep/session", g(self.stats), methods=["GET"]),
            Route("/whep/session/{session}", g(self.delete), methods=["DELETE"]),
            Route("/whep/session/{session}", g(self.patch), methods=["PATCH"]),
            Route("/whep/session/{session}", g(self.options), methods=["OPTIONS"]),
            Route("/whep/{avatar}", g(self.offer), methods=["POST"]),
            Route("/whep/{avatar}", g(self.options), methods=["OPTIONS"]),
        ]


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


async def _read(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WhepError(413, "too_large", f"an SDP offer is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _pct(values: list[float], q: int) -> float:
    return round(percentile(values, q), 1)


SDP_BODY = {"required": True, "content": {"application/sdp": {"schema": {"type": "string"}}}}
WHEP_ANSWERS = (Answer(201, "the SDP answer; Location: /whep/session/{id} (DELETE ends it)", "application/sdp",
                       {"type": "string"}),
                Answer(400, "not an SDP offer, or one aiortc refuses"), Answer(404, "unknown avatar"),
                Answer(413, "offer over 64 KiB"), Answer(415, "not application/sdp"),
                Answer(503, "too many viewers (Retry-After), or the engine is unavailable"))
WHEP_OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/whep", "WHEP: the default avatar's face and voice as WebRTC (VP8/H.264 + Opus)",
              WHEP_ANSWERS, SDP_BODY),
    Operation("post", "/whep/{avatar}", "WHEP: one avatar's face and voice as WebRTC", WHEP_ANSWERS, SDP_BODY),
    Operation("delete", "/whep/session/{session}", "End a WHEP session", (
        Answer(200, "ended"), Answer(404, "no such session"))),
    Operation("get", "/whep/session", "The open WHEP sessions, feeds and limits", (
        Answer(200, "counts, limits and per-session figures", schema={"type": "object"}),)),
)


_WHEPS: weakref.WeakKeyDictionary[Bridge, Whep] = weakref.WeakKeyDictionary()  # one per bridge (tests run several)


def _whep_of(bridge: Bridge) -> Whep:
    if bridge not in _WHEPS:
        _WHEPS[bridge] = Whep(bridge, bridge.settings_of(WHEP))
    return _WHEPS[bridge]


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
    """Every session and feed closed before the engine link is; aiortc's expected connect-task errors kept out of
    the error log while the feature runs."""
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
        yield
    finally:
        await _whep_of(bridge).aclose()
        loop.set_exception_handler(previous)


WHEP = Feature("whep", routes=lambda bridge: _whep_of(bridge).routes(), operations=WHEP_OPERATIONS,
               options=WHEP_OPTIONS, settings=WhepSettings, lifespan=_lifespan)
