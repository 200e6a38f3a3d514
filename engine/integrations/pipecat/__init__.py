"""Our avatar in a pipecat pipeline (the ``[pipecat]`` extra; docs/pipecat.md).

- ``LivePortraitVideoService`` (service.py): TTS audio in, the voice and the face out in sync; interruptions,
  the listening face and the turn state go to the engine; its jobs are mixins of their own: speech_out.py (speak),
  face_in.py (frames with their voice), listening.py (the user's turns);
- ``LivePortraitEmotionTags`` (emotion.py): the LLM's ``[happy]`` tags out of the spoken text, onto the face;
- ``HeldSpeech`` (timeline.py): the voice keyed by engine time until its frame is drawn;
- ``AudioOutProbe`` (audio_clock.py, from ``LivePortraitVideoService.audio_probe()``): the voice's clock after the
  transport, which the frames wait for.
"""

from engine.integrations.pipecat.audio_clock import AudioOutClock, AudioOutProbe
from engine.integrations.pipecat.emotion import AvatarEmotionFrame, Emotion, LivePortraitEmotionTags, TagStripper
from engine.integrations.pipecat.service import LivePortraitErrorFrame, LivePortraitVideoService, ServiceStats
from engine.integrations.pipecat.timeline import HeldSpeech, Segment

__all__ = ["AudioOutClock", "AudioOutProbe",
           "AvatarEmotionFrame", "Emotion", "HeldSpeech", "LivePortraitEmotionTags", "LivePortraitErrorFrame",
           "LivePortraitVideoService", "Segment", "ServiceStats", "TagStripper"]
