"""The one client-side implementation of the engine protocol (docs/protocol.md): sync and asyncio.

The bridge, the tests, the benches and the README examples speak to the engine through this package only, so a
protocol change is made in one place on each side (engine/protocol.py there, here here). One module per concern:

- ``errors``: the typed errors (each with the engine's wire code);
- ``messages``: typed replies, frames, audio messages, keyframes, the clock offset; building and checking maps;
- ``sockets``: REQ and SUB socket factories (linger, CURVE, topic filters, high-water marks);
- ``commands``: the command helpers, one table that both clients turn into methods;
- ``sync``: ``EngineClient``, blocking; ``aio``: ``AsyncEngineClient``, a pool for asyncio;
- ``subscribers``: ``FrameSubscriber`` and ``AsyncFrameSubscriber``; ``cluster``: ``ClusterFrameSubscriber``.

Reliability is the zguide's Lazy Pirate: a REQ socket that missed its reply is stuck (it still expects that reply),
so it is closed with linger 0, a fresh one is connected and the request is sent again, ``retries`` times. The async
client keeps a small pool of REQ sockets so concurrent callers each hold their own; a caller beyond the pool waits
a bounded time (count and deadline) and then gets ``Overloaded`` instead of queuing without end.

Frames arrive on the PUB socket as ``[topic, msgpack header, jpeg]``; the subscribers turn them into ``Frame``
dataclasses. ``clock_offset`` measures ``engine_time = client_time + offset`` from ``health``'s ``now``
(time.monotonic on both sides).
"""

from engine.client.aio import AsyncEngineClient
from engine.client.cluster import ClusterFrameSubscriber
from engine.client.commands import COMMANDS, Command, command
from engine.client.errors import BadReply, EngineClientError, EngineReplyError, EngineUnavailable, Overloaded
from engine.client.messages import (
    AudioMessage,
    AvatarReply,
    AvatarsReply,
    ClockOffset,
    ExpressionsReply,
    Frame,
    HealthReply,
    Keyframe,
    RenderReply,
    Reply,
    SourceReply,
    SpeakReply,
    StreamReply,
    TurnReply,
    build_message,
    check_reply,
    parse_audio,
    parse_reply,
)
from engine.client.sockets import frame_subscriber_socket
from engine.client.subscribers import AsyncFrameSubscriber, FrameSubscriber
from engine.client.sync import DEFAULT_TIMEOUT_MS, EngineClient
from engine.security import CurveClientKeys

__all__ = [
    "COMMANDS", "DEFAULT_TIMEOUT_MS", "AsyncEngineClient", "AsyncFrameSubscriber", "AudioMessage", "AvatarReply",
    "AvatarsReply", "BadReply", "ClockOffset", "ClusterFrameSubscriber", "Command", "CurveClientKeys",
    "EngineClient", "EngineClientError", "EngineReplyError", "EngineUnavailable", "ExpressionsReply", "Frame",
    "FrameSubscriber", "HealthReply", "Keyframe", "Overloaded", "RenderReply", "Reply", "SourceReply",
    "SpeakReply", "StreamReply", "TurnReply", "build_message",
    "check_reply", "command", "frame_subscriber_socket", "parse_audio",
    "parse_reply",
]
