"""Acoustic features -> mouth controls every 10 ms, streaming, no per-speaker calibration.

The mapping (docs/speech.md says why each piece is there):

- two axes (JALI): the jaw is loudness against the utterance's own running peak (so any recording gain works)
  times an openness from F1 (F1 rises as the jaw drops); the lips (mouthLowerDown, mouthUpperUp) are loudness
  with a floor while voiced, so a close vowel still parts them;
- a closed-mouth murmur (energy almost all below 400 Hz and quieter than the vowels: m, n and the voice bar of b)
  shuts every opening and presses the lips (mouthPress); a stop's closure (p, b, t) shuts them too, silent or,
  where a voice fills it with a quiet residue, heard as a gap far under the sounds around it (_stop_gap); f-like
  frication (middling spectral tilt with some low energy) rolls the lower lip in (mouthRollLower);
- rounding: low F2 with low F1 -> mouthPucker ('oo'), low F2 with mid F1 -> mouthFunnel ('oh');
- spreading: high F2 -> mouthStretch (front vowels 'ee'); the expression layer owns the smile;
- formants are judged against the speaker's own running mean (a prior of an average adult voice that moves
  towards the speaker, at most 25%), so women, men and children need no calibration;
- short closures are widened by ERODE frames each side (only next to a closure), then every control is smoothed
  with a symmetric 90 ms window read SHIFT frames ahead: the mouth starts to move up to ~40 ms before the sound
  (coarticulation; one frame at 25 fps), has no lag at its midpoint, never chatters, and eases shut after the
  last sound.

Everything is causal apart from a fixed look-ahead of LOOKAHEAD frames, which is what makes streaming exact:
MouthAnalyser.push gives every frame the look-ahead allows, and chunked input gives the whole utterance's controls.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from engine.speech.analysis import Features, FeatureStream
from engine.speech.audio import Pcm

HOP_S = 0.01
# The opening controls come first (OPEN of them): their closures are widened before smoothing; the lip bite comes
# last (CLOSE of them) and is widened the same way, so a short f is held, not flashed. Press is only smoothed: it
# would otherwise spill into the vowels around a closure.
MOUTH_CONTROLS: tuple[str, ...] = ("jawOpen", "mouthLowerDown", "mouthUpperUp", "mouthFunnel", "mouthPucker",
                                   "mouthStretch", "mouthPress", "mouthRollLower")
OPEN, CLOSE = 4, 1

JAW_MAX = 0.7  # the widest speech opening; a shout is not a yawn
LIP_MAX = 0.7  # mouthLowerDown at a loud syllable: the lips part apart from the jaw (JALI's lip axis)
LIP_FLOOR = 0.45  # mouthLowerDown while voiced and not shut: a close vowel (/i/, /u/, schwa) still parts the lips
UPPER_SHARE = 0.5  # mouthUpperUp as a share of the lip opening (more on front vowels)
PRESS_MAX = 0.7  # mouthPress on a murmured closure (m, b)
ROLL_MAX = 0.7  # mouthRollLower on f
SPREAD_MAX = 0.5  # mouthStretch on a front vowel
PUCKER_MAX = 0.8
FUNNEL_MAX = 0.5
RANGE_DB = 30.0  # loudness below the running peak by more than this is silence
PEAK_DECAY_DB_S = 6.0  # the running peak falls this fast, so a quieter passage still opens the mouth
PEAK_FLOOR_DB = -50.0  # below this nothing is speech, however quiet the recording
PEAK_AHEAD = 4  # frames of look-ahead in the peak: an onset does not take its own rise as the reference
SMOOTH = np.hanning(11)[1:-1]  # 9 taps, 90 ms
SMOOTH = SMOOTH / SMOOTH.sum()
HALF = len(SMOOTH) // 2
CLOSED = 0.02  # a target below this is a closure (or silence)
ERODE = 3  # frames: a stop's closure of 30 ms still shuts the lips fully (real closures last 50-150 ms)
MIN_OPEN = 4  # frames: the erosion leaves a syllable between two closures at least this long open (espeak-ng's
# short vowels between f, v, m last 40-70 ms: a plain 30 ms erosion each side wiped them out)
SEE = 2 * ERODE + 1  # frames: how far the erosion looks for a closure to know the open run's length
SHIFT = 1  # frames: the erosion delays the opening by ERODE; reading one frame ahead re-centres it
LOOKAHEAD = PEAK_AHEAD + HALF + SEE + SHIFT  # frames beyond a frame that it depends on
# A nasal murmur heard by its spectrum, however loud (docs/speech.md, "Closure"). Its evidence, in dB: the 100-400
# Hz band over 400-800 Hz (the first nasal resonance, then the antiformant's valley), plus shares of how far 2-3.8
# kHz lies under the low band, under its own running peak (the vowels' F2/F3 are damped away) and how far the level
# lies under its running peak (both capped: a fading vowel keeps falling), and of how low F1 is against the
# speaker's (no term where no formant was found). Weights from a logistic fit on labelled frames of recorded and
# espeak-ng voices, the F1 term and the thresholds then set on whole phones (docs/speech.md).
NASAL_HIGH = 0.25  # per dB of the low band over 2-3.8 kHz
NASAL_DIP, NASAL_DIP_CAP = 2.3, 15.0  # per dB of 2-3.8 kHz under its running peak, up to the cap
NASAL_QUIET, NASAL_QUIET_CAP = 2.3, 8.0  # per dB of the level under its running peak, up to the cap
NASAL_F1 = 50.0  # per unit of log(F1 / the speaker's F1) under log(NASAL_F1_REF), and taken off above it: a
NASAL_F1_REF = 0.65  # murmur's resonance (250-300 Hz) lies under even a close /u/'s F1 (350-450 Hz, Festival's slt)
NASAL_DECAY_DB_S = 20.0  # the running peaks the dips are measured from fall this fast: the sounds just around
NASAL_FLOOR_DB = -120.0  # their floor: any recording gain gives the same dips
NASAL_AT = 60.0  # dB of evidence where the lips start to close ...
NASAL_FULL = 64.0  # ... and where they are shut
CLOSURE_VALLEY = 6.0  # dB: either murmur test shuts the lips only with this much of a nasal's 400-800 Hz valley
# (full 4 dB above it): a lateral (espeak-ng's /l/ is as quiet and as dull above 2 kHz as an m) has less
# A stop's gap heard by its drop, not by silence (_stop_gap says why).
GAP_DB = 15.0  # dB under the level's near running peak where a gap starts to shut the lips ...
GAP_FULL = 20.0  # ... and where it shuts them (vowels, l, w and m lie within 15 dB of the sounds around them)
GAP_HIGH = 0.2  # a gap has no frication: a 2-3.8 kHz share over this (h, s, sh, a stop's burst) is not one (full
# under 0.15)
GAP_DROP = 8.0  # dB a gap's first frame lies under the louder of the two frames before it
GAP_FALL = 2.0  # dB: a frame whose next PEAK_AHEAD frames all lie this far under it is a fade, not a gap
GAP_HOLD = 3  # frames: a gap shuts the lips this long at least (while GAP_HOLD_DB quiet and not the release's edge):
GAP_HOLD_DB = 13.0  # a 20-30 ms gap then shows on a 25 fps frame (40 ms apart) whatever the phase
GAP_RISE = 9.0  # dB: a frame the next one rises this far over is the release's edge, not the gap (from 6 dB on)
APPROX_JAW = 0.7  # the share of the jaw's opening an approximant (l, r, w) takes away
APPROX_LIPS = 0.5  # and of the lips'
PRIOR_F1, PRIOR_F2 = 500.0, 1500.0  # Hz: an average adult's vowel space centre (Peterson & Barney)
PRIOR_FRAMES = 300.0  # the prior weighs as much as 3 s of voiced speech
MAX_ADAPT = 0.25


@dataclass
class _State:
    peak: float = PEAK_FLOOR_DB
    near_peak: float = NASAL_FLOOR_DB  # the level's running peak, falling fast (NASAL_DECAY_DB_S)
    high_peak: float = NASAL_FLOOR_DB  # the running peak of 2-3.8 kHz, falling as fast
    voiced: float = 0.0  # voiced frames so far (weighted)
    sum_log_f1: float = 0.0
    sum_log_f2: float = 0.0
    gap: float = 0.0  # the last frame's stop-gap evidence (a gap must hold on two frames running) ...
    gap_inside: bool = False  # ... whether that frame met the gap's tests, and whether its run began with a drop
    gap_valid: bool = False
    before: tuple[float, float] = (NASAL_FLOOR_DB, NASAL_FLOOR_DB)  # the level of the two frames before
    held: tuple[float, ...] = (0.0,) * (GAP_HOLD - 1)  # the gap of the frames before, held GAP_HOLD frames


@dataclass
class MouthAnalyser:
    """Streaming analysis of one utterance: ``push`` chunks, then ``finish``; or ``analyse`` for the whole.

    Outputs are rows of MOUTH_CONTROLS, row k for utterance time k * HOP_S.
    """

    sample_rate: int
    _stream: FeatureStream = field(init=False)
    _feat: Features = field(init=False)  # features from frame _fbase on (older ones are no longer needed)
    _fbase: int = field(init=False, default=0)
    _targets: np.ndarray = field(init=False)  # (n, 4) unsmoothed, frames _tbase.. with a final reference
    _tbase: int = field(init=False, default=0)
    _state: _State = field(init=False, default_factory=_State)
    _out: int = field(init=False, default=0)  # rows emitted
    finished: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._stream = FeatureStream(self.sample_rate)
        self._feat = Features.empty()
        self._targets = np.zeros((0, len(MOUTH_CONTROLS)))

    @property
    def emitted(self) -> int:
        return self._out

    @property
    def held_frames(self) -> int:
        """Frames of features and targets kept: bounded by the look-ahead, however long the stream."""
        return len(self._feat) + len(self._targets)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """New final rows made possible by these samples (possibly none)."""
        return self._advance(self._stream.push(samples), last=False)

    def finish(self) -> np.ndarray:
        """The remaining rows, up to the end of the audio (the mouth eases shut there)."""
        return self._advance(self._stream.push(np.zeros(0, np.float32), last=True), last=True)

    def tail(self) -> np.ndarray:
        """Provisional rows after the final ones, as if the audio ended here (replaced by the next push)."""
        done = self._tbase + len(self._targets)
        extra = _targets(self._feat, done - self._fbase, len(self._feat), self._state_copy())
        all_t = np.concatenate([self._targets, extra])
        return _smooth(all_t, self._out, self._tbase + len(all_t), self._tbase)

    def _state_copy(self) -> _State:
        s = self._state
        return replace(s)

    def _advance(self, new: Features, last: bool) -> np.ndarray:
        if len(new):
            self._feat = Features.concat([self._feat, new])
        n = self._fbase + len(self._feat)
        done = self._tbase + len(self._targets)
        ready = n if last else max(done, n - PEAK_AHEAD)
        if ready > done:
            more = _targets(self._feat, done - self._fbase, ready - self._fbase, self._state)
            self._targets = np.concatenate([self._targets, more])
            done = ready
        end = done if last else max(self._out, done - HALF - SEE - SHIFT)
        rows = _smooth(self._targets, self._out, end, self._tbase)
        self._out = end
        self.finished = last
        # keep only what later frames still need: features from the next target on, targets within reach
        drop = done - self._fbase
        if drop > 0:
            self._feat = self._feat.drop(drop)
            self._fbase = done
        keep = max(self._tbase, end + SHIFT - HALF - SEE)
        self._targets = self._targets[keep - self._tbase:]
        self._tbase = keep
        return rows


def analyse(pcm: Pcm) -> np.ndarray:
    """The whole utterance's mouth controls: rows of MOUTH_CONTROLS every HOP_S from the first sample."""
    a = MouthAnalyser(pcm.sample_rate)
    return np.concatenate([a.push(pcm.samples), a.finish()])


def stop_gaps(pcm: Pcm) -> np.ndarray:
    """How surely each 10 ms frame of a whole utterance is a stop's gap (0..1), as the mouth hears it: for tests and
    the bench, to see where the gap test shuts the lips."""
    f = FeatureStream(pcm.sample_rate).push(pcm.samples, last=True)
    if not len(f):
        return np.zeros(0)
    near = _running_peak(f.level, 0, len(f), NASAL_FLOOR_DB, NASAL_DECAY_DB_S, NASAL_FLOOR_DB)
    return _stop_gap(f, 0, len(f), near, _State())


def _targets(f: Features, start: int, stop: int, state: _State) -> np.ndarray:
    """Unsmoothed controls of frames start..stop (features beyond stop are the look-ahead); updates state."""
    n = stop - start
    out = np.zeros((n, len(MOUTH_CONTROLS)))
    if n <= 0:
        return out
    peak = _running_peak(f.level, start, stop, state.peak, PEAK_DECAY_DB_S)
    state.peak = float(peak[-1])
    high_db = f.level + 10.0 * np.log10(f.high_share + 1e-12)
    near_peak = _running_peak(f.level, start, stop, state.near_peak, NASAL_DECAY_DB_S, NASAL_FLOOR_DB)
    high_peak = _running_peak(high_db, start, stop, state.high_peak, NASAL_DECAY_DB_S, NASAL_FLOOR_DB)
    state.near_peak, state.high_peak = float(near_peak[-1]), float(high_peak[-1])
    lv = f.level[start:stop]
    loud = np.clip((lv - (peak - RANGE_DB)) / (RANGE_DB - 6.0), 0.0, 1.0)

    voicing = np.clip((f.voicing[start:stop] - 0.3) / 0.4, 0.0, 1.0)
    f1, f2 = f.f1[start:stop], f.f2[start:stop]
    has = np.isfinite(f1) & np.isfinite(f2)
    w = np.where(has, voicing * loud, 0.0)
    cum_w = state.voiced + np.cumsum(w)
    cum1 = state.sum_log_f1 + np.cumsum(np.where(has, w * np.log(np.where(has, f1, 1.0)), 0.0))
    cum2 = state.sum_log_f2 + np.cumsum(np.where(has, w * np.log(np.where(has, f2, 1.0)), 0.0))
    state.voiced, state.sum_log_f1, state.sum_log_f2 = float(cum_w[-1]), float(cum1[-1]), float(cum2[-1])
    lim = np.log1p(MAX_ADAPT)
    ref1 = np.log(PRIOR_F1) + np.clip((cum1 - cum_w * np.log(PRIOR_F1)) / (PRIOR_FRAMES + cum_w), -lim, lim)
    ref2 = np.log(PRIOR_F2) + np.clip((cum2 - cum_w * np.log(PRIOR_F2)) / (PRIOR_FRAMES + cum_w), -lim, lim)
    f1n = np.where(has, np.exp(np.log(np.where(has, f1, PRIOR_F1)) - ref1), 1.0)
    f2n = np.where(has, np.exp(np.log(np.where(has, f2, PRIOR_F2)) - ref2), 1.0)

    # JALI's two axes. The jaw: F1 says how open a vowel is; unvoiced sounds (s, h) get a small fixed opening.
    vowel_open = np.clip(0.15 + 0.85 * (f1n - 0.55) / 0.85, 0.15, 1.0)
    shape = np.where(has, voicing * vowel_open + (1.0 - voicing) * 0.3, 0.3)
    low = np.clip((f.low_share[start:stop] - 0.7) / 0.1, 0.0, 1.0)
    quiet = np.clip((peak - 6.0 - lv) / 6.0, 0.0, 1.0)
    # a murmur through the nose or behind closed lips (m, n, b) has no energy up where F2/F3 of a vowel are: a low
    # voice's /i/ (F1 ~280 Hz) has most of its power below 400 Hz too, but its F2/F3 keep 2-3.8 kHz over 10%
    no_f2 = np.clip((0.1 - f.high_share[start:stop]) / 0.06, 0.0, 1.0)
    # a nasal murmur however loud: its spectrum, and how it dips against the sounds just around it
    hi_db = high_db[start:stop]
    low_db = lv + 10.0 * np.log10(f.low_share[start:stop] + 1e-12)
    evidence = (f.valley[start:stop] + NASAL_HIGH * (low_db - hi_db)
                + NASAL_DIP * np.minimum(high_peak - hi_db, NASAL_DIP_CAP)
                + NASAL_QUIET * np.minimum(near_peak - lv, NASAL_QUIET_CAP)
                - np.where(has, NASAL_F1 * np.log(f1n / NASAL_F1_REF), 0.0))
    nasal = np.clip((evidence - NASAL_AT) / (NASAL_FULL - NASAL_AT), 0.0, 1.0) * voicing * (loud > 0.0)
    valley = np.clip((f.valley[start:stop] - CLOSURE_VALLEY) / 4.0, 0.0, 1.0)
    closure = np.maximum(low * quiet * no_f2, nasal) * valley
    gap = _stop_gap(f, start, stop, near_peak, state)
    # a voiced consonant a few dB under the sounds just around it with its upper spectrum damped, not a murmur (l,
    # r, w, a voiced th): the tongue tip or the lips narrow the way and the jaw rises part way (hello's /l/)
    approximant = (voicing * np.clip((near_peak - lv - 2.0) / 6.0, 0.0, 1.0)
                   * np.clip((high_peak - hi_db - 5.0) / 10.0, 0.0, 1.0) * (1.0 - closure))
    # f (and espeak's th-less labiodental noise): frication of middling tilt with some low energy, well under the
    # vowels: s, sh, th are steeper (high share > 0.5), h has no low part (docs/speech.md, measured on espeak-ng)
    high, share = f.high_share[start:stop], f.low_share[start:stop]
    bite = (np.clip((high - 0.12) / 0.08, 0.0, 1.0) * np.clip((0.5 - high) / 0.08, 0.0, 1.0)
            * np.clip((share - 0.15) / 0.1, 0.0, 1.0) * np.clip((peak - 15.0 - lv) / 5.0, 0.0, 1.0)
            * (loud > 0.0))
    shut = np.maximum(np.maximum(closure, gap), bite)
    jaw = JAW_MAX * loud ** 0.8 * shape * (1.0 - shut) * (1.0 - APPROX_JAW * approximant)
    # The lips: they part on every voiced sound however close the vowel (a floor while voiced), with loudness
    # above it; unvoiced sounds part them a little (teeth show on s).
    speaking = np.clip(1.7 * loud - 0.1, 0.0, 1.0)
    floor = LIP_FLOOR * np.clip((loud - 0.15) / 0.15, 0.0, 1.0) * voicing
    lips = (np.maximum(LIP_MAX * speaking ** 0.7 * (0.4 + 0.6 * voicing), floor) * (1.0 - shut)
            * (1.0 - APPROX_LIPS * approximant))

    gate = np.clip(loud * 3.0, 0.0, 1.0) * voicing * has
    back = np.clip((1.3 - f2n) / 0.35, 0.0, 1.0)
    front = np.clip((f2n - 1.12) / 0.3, 0.0, 1.0)
    pucker = PUCKER_MAX * gate * back * np.clip((1.05 - f1n) / 0.35, 0.0, 1.0) * (1.0 - shut)
    funnel = FUNNEL_MAX * gate * back * np.clip(1.0 - np.abs(f1n - 1.1) / 0.4, 0.0, 1.0) * (1.0 - shut)
    upper = lips * UPPER_SHARE * (0.4 + 0.6 * front * gate)  # the upper teeth show, most on a spread vowel
    stretch = SPREAD_MAX * np.clip(2.0 * loud - 0.1, 0.0, 1.0) * voicing * has * front * (1.0 - shut)
    press = PRESS_MAX * closure * np.clip(loud * 4.0, 0.0, 1.0)
    roll = ROLL_MAX * bite
    out[:] = np.stack([jaw, lips, upper, funnel, pucker, stretch, press, roll], axis=1)
    return out


def _stop_gap(f: Features, start: int, stop: int, near_peak: np.ndarray, state: _State) -> np.ndarray:
    """How surely frames start..stop are a stop's gap (0..1), silent or not; updates state.

    Why: espeak-ng's en-us+f4 (and, less, +f3) fill the 20-40 ms closure of a p (and b, t) with a quiet, voiced,
    vowel-coloured residue 20-25 dB under the vowels, above the 30 dB under the running peak that counts as silence,
    so the lips stayed a fifth open through it and the 25 fps frame in the closure showed them apart (docs/speech.md,
    "Stops that are not silent"). A gap is at least GAP_DB under the sounds just around it (the near running peak),
    without frication (h, s, a burst), not still falling (a vowel dying into a pause falls on; a closure holds its
    floor until the release: the PEAK_AHEAD frames already read), not the release's rising edge (the next frame),
    entered by a drop of GAP_DROP from the two frames before it (a quiet vowel onset after a release or a pause rises
    into its level instead), and held on two frames running (one quiet frame is a join, espeak-ng's schwa into m).
    Once heard it lasts GAP_HOLD frames while the sound stays GAP_HOLD_DB down (into the aspiration), so that a 20-30
    ms gap shuts the lips on a 25 fps frame whatever the frame's phase. Causal but for PEAK_AHEAD frames of features,
    so streaming stays exact."""
    n = stop - start
    lv = f.level[start:stop]
    ahead = np.full(n, -np.inf)
    for j in range(1, PEAK_AHEAD + 1):
        seg = f.level[start + j: stop + j]
        ahead[: len(seg)] = np.maximum(ahead[: len(seg)], seg)
    nxt = np.concatenate([f.level[start + 1: stop + 1], np.full(max(0, stop + 1 - len(f)), -np.inf)])
    dip = near_peak - lv
    not_edge = np.clip((lv + GAP_RISE - nxt) / 3.0, 0.0, 1.0)
    holds = np.clip((dip - GAP_HOLD_DB) / 2.0, 0.0, 1.0) * not_edge
    g = (np.clip((dip - GAP_DB) / (GAP_FULL - GAP_DB), 0.0, 1.0) * not_edge
         * np.clip((GAP_HIGH - f.high_share[start:stop]) / 0.05, 0.0, 1.0)
         * np.clip((ahead - lv + GAP_FALL) / GAP_FALL, 0.0, 1.0))
    before = np.concatenate([state.before, lv])
    dropped = np.maximum(before[:n], before[1: n + 1]) - lv >= GAP_DROP
    inside = g > 0.0
    starts = inside & ~np.concatenate([[state.gap_inside], inside[:-1]])
    run = np.cumsum(starts)  # 0: the run going on when this block began
    valid = np.concatenate([[state.gap_valid], dropped[starts]])[run]
    g = np.where(inside & valid, g, 0.0)
    paired = np.minimum(g, np.concatenate([[state.gap], g[:-1]]))
    held = np.concatenate([state.held, paired])
    out = paired.copy()
    for j in range(1, GAP_HOLD):
        out = np.maximum(out, held[GAP_HOLD - 1 - j: GAP_HOLD - 1 - j + n] * holds)
    state.gap, state.gap_inside, state.gap_valid = float(g[-1]), bool(inside[-1]), bool(valid[-1])
    state.before = (float(before[-2]), float(before[-1]))
    state.held = tuple(float(x) for x in held[len(held) - (GAP_HOLD - 1):])
    return out


def _running_peak(x: np.ndarray, start: int, stop: int, last: float, decay_db_s: float,
                  floor: float = PEAK_FLOOR_DB) -> np.ndarray:
    """peak[k] = max(peak[k-1] - decay, max(x[k .. k+PEAK_AHEAD]), floor) over frames start..stop, from the
    previous frame's peak ``last`` (x beyond stop is the look-ahead)."""
    n = stop - start
    ahead = np.full(n, -np.inf)
    for j in range(PEAK_AHEAD + 1):
        seg = x[start + j: stop + j]
        ahead[: len(seg)] = np.maximum(ahead[: len(seg)], seg)
    decay = decay_db_s * HOP_S
    k = np.arange(1, n + 1)
    peak = np.maximum.accumulate(np.maximum(ahead, floor) + decay * k) - decay * k
    return np.maximum(peak, last - decay * k)


def _smooth(targets: np.ndarray, start: int, stop: int, base: int = 0) -> np.ndarray:
    """Rows start..stop of the output: opening controls eroded (a short closure widens by up to ERODE frames each
    side, so the smoothing cannot fill it in, but never so far that a short syllable between two closures keeps
    less than MIN_OPEN frames open), all convolved with SMOOTH, read SHIFT frames ahead. ``targets`` holds frames
    base..; frames before the utterance and after the last target are zeros (silence)."""
    n = stop - start
    if n <= 0:
        return np.zeros((0, targets.shape[1]))
    reach = HALF + SEE
    lo, hi = start + SHIFT - reach - base, stop + SHIFT + reach - base
    pad_lo, pad_hi = max(0, -lo), max(0, hi - len(targets))
    if pad_lo and base:
        raise AssertionError("a frame needed for smoothing was trimmed")  # a bug, never client input
    seg = np.concatenate([np.zeros((pad_lo, targets.shape[1])), targets[max(0, lo): min(hi, len(targets))],
                          np.zeros((pad_hi, targets.shape[1]))])
    m = len(seg) - 2 * SEE
    eroded = seg[SEE: SEE + m].copy()
    low = eroded[:, :OPEN].copy()
    high = eroded[:, -CLOSE:].copy()
    for j in range(SEE - ERODE, SEE + ERODE + 1):
        low = np.minimum(low, seg[j: j + m, :OPEN])  # the openings
        high = np.maximum(high, seg[j: j + m, -CLOSE:])  # the bite: held over the widened frication
    # distance to the nearest closed frame on each side (SEE + 1: none within sight), and the open run's length
    closed = seg[:, :OPEN].max(axis=1) < CLOSED
    left = np.full(m, SEE + 1)
    right = np.full(m, SEE + 1)
    for d in range(SEE, 0, -1):
        left = np.where(closed[SEE - d: SEE - d + m], d, left)
        right = np.where(closed[SEE + d: SEE + d + m], d, right)
    reach_each = np.clip((left + right - 1 - MIN_OPEN) // 2, 0, ERODE)
    erode = closed[SEE: SEE + m] | (np.minimum(left, right) <= reach_each)
    eroded[:, :OPEN] = np.where(erode[:, None], low, eroded[:, :OPEN])
    eroded[:, -CLOSE:] = high
    out = np.zeros((n, targets.shape[1]))
    for j, w in enumerate(SMOOTH):
        out += w * eroded[j: j + n]
    return out
