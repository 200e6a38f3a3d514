"""The listening half of LivePortraitVideoService: the user's turns and voice to the engine's conversation commands
(user_speech, user_audio, set_turn). A mixin of the service (service.py's ``__init__`` makes the state)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.client import EngineClientError

USER_AUDIO_CHUNK_S = 0.1  # the user's voice goes to the engine in chunks this long (10-500 ms allowed)


class Listening:
    """A command the engine does not know is reported once and then not sent again: the face still speaks."""

    async def _flush_user_audio(self) -> None:
        if not self._user_pcm:
            return
        pcm = np.concatenate(self._user_pcm)
        self._user_pcm = []
        await self._conversation("user_audio", audio=pcm.astype("<i2").tobytes(), sample_rate=self._user_rate)

    async def _conversation(self, cmd: str, **fields_: Any) -> None:
        """A conversation command (listening face, turn state); one report and then silence if unsupported."""
        if not self._live or self._client is None or cmd in self._unsupported:
            return
        try:
            reply = await self._client.call(cmd, avatar=self._avatar, **fields_)
            self.stats.turn = reply.get("turn", self.stats.turn)
        except EngineClientError as exc:
            if exc.code in ("unknown_command", "bad_request"):
                self._unsupported.add(cmd)
            await self._report(exc, f"{cmd} failed" + (" (not sent again)" if cmd in self._unsupported else ""))
