"""Typed errors: every refusal the engine can give, each with a stable wire code.

Inside the engine these are raised; at the socket they become
``{"ok": false, "error": {"code": err.code, "message": str(err)}}`` and the bridge maps
``code`` to an HTTP status (``HTTP_STATUS``). Add a code here, nowhere else: the bridge raises these classes too
(its HTTP-only refusals are at the end), and the client's own errors take their codes from here.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error a client can be told about."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class BadRequest(EngineError):
    """A malformed message or a field of the wrong type, value or range."""

    code = "bad_request"


class UnknownCommand(BadRequest):
    code = "unknown_command"


class UnsupportedVersion(BadRequest):
    code = "unsupported_version"


class InvalidImage(EngineError):
    """Bytes that are not a decodable JPEG, PNG or WebP image (or a truncated one)."""

    code = "invalid_image"


class ImageTooLarge(EngineError):
    """An image over the byte or pixel limit; refused before it is decoded."""

    code = "image_too_large"


class ImageTooSmall(InvalidImage):
    """An image too small to hold a usable face (a few pixels on a side)."""

    code = "image_too_small"


class NoFaceDetected(EngineError):
    code = "no_face"


class UnknownAvatar(EngineError):
    code = "unknown_avatar"


class ModelsMissing(EngineError):
    """Model files are absent from the models folder (and could not be downloaded)."""

    code = "models_missing"


class WeightsInvalid(EngineError):
    """A checkpoint that is truncated, has the wrong sha256, or wrong keys or shapes."""

    code = "weights_invalid"


class Busy(EngineError):
    """The engine's render queue is full; retry later."""

    code = "busy"


class RenderFailed(EngineError):
    """The renderer could not draw this frame (a known, reportable cause)."""

    code = "render_failed"


class PrepFailed(EngineError):
    """The prep process died (or hung) while decoding or detecting this image; it has been restarted."""

    code = "prep_failed"


class Cancelled(EngineError):
    """The job was cancelled before it finished (a talking clip whose client went away, ``cancel_clip``)."""

    code = "cancelled"


class Internal(EngineError):
    """A bug: any command's unexpected exception. Logged with its traceback; the client gets this code."""

    code = "internal"


class ConfigError(EngineError):
    """Settings that contradict each other or the machine; raised at start-up, never for a client's request."""

    code = "config_error"


# --- audio (engine/speech/errors.py re-exports them) -----------------------------------------------------------

class BadAudio(BadRequest):
    """Audio that cannot be played: a header cut short, no samples, NaN/inf, absurd rate, odd PCM byte count."""

    code = "bad_audio"


class UnsupportedAudio(BadAudio):
    """Bytes that are not a WAV at all, or a WAV encoding we do not read (ADPCM, mu-law, ...)."""

    code = "unsupported_audio"


class AudioTooLong(BadAudio):
    """More than the limit (60 s by default) in one message: refused before decoding the samples."""

    code = "audio_too_long"


# --- the engine out of reach (engine/client/ raises these codes; the bridge answers them) ---------------------

class EngineUnavailableError(EngineError):
    """No reply from the engine in time (down, wedged, unreachable), or the bridge is starting or stopping."""

    code = "engine_unavailable"


class BadEngineReply(EngineError):
    """The engine's bytes were not a protocol reply: a different program is listening, or a bug."""

    code = "bad_reply"


# --- HTTP only: refusals of the bridge itself, before anything reaches the engine -------------------------------

class NotFound(EngineError):
    code = "not_found"


class MethodNotAllowed(EngineError):
    code = "method_not_allowed"


class BodyTimeout(EngineError):
    """The request body did not arrive within the bridge's body timeout."""

    code = "body_timeout"


class BodyTooLarge(EngineError):
    """A request body (not an image or audio: those have their own codes) over its byte cap."""

    code = "too_large"


class UnsupportedMediaType(EngineError):
    """A request body of a content type the route does not read."""

    code = "unsupported_media_type"


class BadSdp(BadRequest):
    """A WHEP offer that is not SDP, or one the WebRTC stack refuses (no video m-line, no common codec)."""

    code = "bad_sdp"


class TooManyViewers(EngineError):
    """Beyond a WHEP viewer limit (per bridge or per avatar): 503, try again later."""

    code = "too_many_viewers"


# The bridge's mapping from wire code to HTTP status. Unlisted codes are 500.
HTTP_STATUS: dict[str, int] = {
    BadRequest.code: 400,
    UnknownCommand.code: 400,
    UnsupportedVersion.code: 400,
    InvalidImage.code: 415,
    ImageTooLarge.code: 413,
    ImageTooSmall.code: 422,
    NoFaceDetected.code: 422,
    UnknownAvatar.code: 404,
    Busy.code: 503,
    ModelsMissing.code: 503,
    WeightsInvalid.code: 503,
    RenderFailed.code: 500,
    PrepFailed.code: 500,
    Cancelled.code: 499,  # the client closed its request (nginx's code); nobody is left to read it
    Internal.code: 500,
    ConfigError.code: 503,
    BadAudio.code: 400,
    UnsupportedAudio.code: 415,
    AudioTooLong.code: 413,
    EngineUnavailableError.code: 503,
    BadEngineReply.code: 502,
    NotFound.code: 404,
    MethodNotAllowed.code: 405,
    BodyTimeout.code: 408,
    BodyTooLarge.code: 413,
    UnsupportedMediaType.code: 415,
    BadSdp.code: 400,
    TooManyViewers.code: 503,
}
