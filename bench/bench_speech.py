"""Speech figures. First, articulation per analysis path and voice, measured on rendered offline frames with dlib's
68 points (tests/speech/lipmeter.py): syllable nuclei where the lips part, r and lag of the mouth opening against
the loudness, analysis speed, and the live path's audio -> mouth latency; test voices and held-out voices (never
tuned on). Then analysis speed as a multiple of real time (one core), streaming chunk cost, formants against
praat-parselmouth (speed and agreement), the speech layer's per-frame cost, and MP4 writing for a 5 s clip.

Closures come first: per voice, the share of m, b and p at which the lips meet, and of vowels, back vowels and
/l/ at which they wrongly do, on the mouth controls and on rendered frames, with each voice's m level against the
vowels around it (Festival's recorded-speaker voices, whose m's are loud, and espeak-ng's; phones timed by the
synthesiser, tests/speech/voices.py).

Run: .venv/bin/python bench/bench_speech.py [--repeat 7] [--articulation-only | --closures-only]
Prints median / min / max over the repeats; no assertions. Needs espeak-ng (the speech is made here).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: set before numpy loads its BLAS

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation.timeline import Animator, IdleConfig  # noqa: E402
from engine.clip import encode_mp4, frame_count, render_speech_clip  # noqa: E402
from engine.speech.analysis import FeatureStream  # noqa: E402
from engine.speech.audio import ANALYSIS_RATE, Pcm, decode_audio, resample  # noqa: E402
from engine.speech.mouth import MouthAnalyser, analyse  # noqa: E402

TEXT = ("Hello, my mom bought a puppy. Please be happy. The quick brown fox jumps over the lazy dog, "
        "and we all went home to sleep.")


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def line(label: str, values: list[float], unit: str = "", fmt: str = "{:.1f}") -> None:
    med, lo, hi = statistics.median(values), min(values), max(values)
    print(f"{label:<58} median {fmt.format(med)}{unit}  min {fmt.format(lo)}{unit}  max {fmt.format(hi)}{unit}")


def speech(tmp: Path, text: str, rate: int) -> Pcm:
    wav = tmp / "s.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(wav), text], check=True)
    pcm = decode_audio(wav.read_bytes())
    return Pcm(resample(pcm.samples, pcm.sample_rate, rate), rate) if rate != pcm.sample_rate else pcm


def bench_parselmouth(pcm: Pcm, repeat: int) -> None:
    try:
        import parselmouth
    except ImportError:
        print("praat-parselmouth not installed: skipped (pip install praat-parselmouth)")
        return
    snd = parselmouth.Sound(pcm.samples.astype(np.float64), sampling_frequency=pcm.sample_rate)

    def praat() -> object:
        return snd.to_formant_burg(time_step=0.01, max_number_of_formants=5, maximum_formant=5000.0,
                                   window_length=0.025)

    times = timed(praat, repeat)
    line("praat-parselmouth Burg formants, x real time", [pcm.duration / t for t in times], "x", "{:.0f}")
    ours = timed(lambda: FeatureStream(pcm.sample_rate).push(pcm.samples, last=True), repeat)
    line("our features (LPC formants + loudness + voicing), x real time", [pcm.duration / t for t in ours], "x",
         "{:.0f}")
    formant = praat()
    f = FeatureStream(pcm.sample_rate).push(pcm.samples, last=True)
    t = np.arange(len(f)) * 0.01
    voiced = np.isfinite(f.f1) & (f.voicing > 0.6) & (f.level > f.level.max() - 25)
    p1 = np.array([formant.get_value_at_time(1, x) for x in t[voiced]])
    p2 = np.array([formant.get_value_at_time(2, x) for x in t[voiced]])
    ok = np.isfinite(p1) & np.isfinite(p2)
    d1 = np.abs(f.f1[voiced][ok] - p1[ok]) / p1[ok]
    d2 = np.abs(f.f2[voiced][ok] - p2[ok]) / p2[ok]
    print(f"agreement on {ok.sum()} voiced frames: F1 median {100 * np.median(d1):.1f}% (within 15%: "
          f"{100 * np.mean(d1 < 0.15):.0f}%), F2 median {100 * np.median(d2):.1f}% (within 15%: "
          f"{100 * np.mean(d2 < 0.15):.0f}%)")


# (voice, pitch): the test voices (tests/speech/test_speech_render.py) and held-out ones, never tuned on
TEST_VOICES = [("en", 50), ("en-us+f3", 80), ("de", 40), ("fr+f2", 70)]
HELD_OUT = [("en-gb-x-rp+m3", 25), ("en-us+f4", 95), ("es+m1", 40), ("it+f5", 70), ("nl", 50), ("pl+m2", 35)]
SENTENCES = {"en": "Hello, my mom bought a puppy. Please be happy.",
             "en2": "Five very fine vans moved over the bridge before we woke up."}


def _rows_state(rows: np.ndarray, t: float) -> object:
    from engine.animation.controls import NEUTRAL
    from engine.animation.state import AnimationState
    from engine.speech.mouth import HOP_S, MOUTH_CONTROLS
    x = t / HOP_S
    i = min(max(int(x), 0), len(rows) - 2)
    f = min(max(x - i, 0.0), 1.0)
    row = rows[i] * (1 - f) + rows[i + 1] * f
    return AnimationState("bench", 1.0, {**NEUTRAL, **{n: float(min(1.0, v)) for n, v in zip(MOUTH_CONTROLS, row,
                                                                                            strict=True)}})


def live_latency(pcm: Pcm, chunk_s: float = 0.01) -> tuple[float, float]:
    """(median, max) seconds between a sample arriving and the final mouth row for its time existing, when the
    audio streams in chunk_s pieces (the provisional tail fills the gap before that, closing the mouth)."""
    from engine.speech.mouth import HOP_S, MouthAnalyser
    a = MouthAnalyser(pcm.sample_rate)
    n = int(chunk_s * pcm.sample_rate)
    lat: list[float] = []
    done = 0
    for i in range(0, len(pcm.samples), n):
        rows = a.push(pcm.samples[i: i + n])
        arrived = min(len(pcm.samples), i + n) / pcm.sample_rate
        lat += [arrived - (done + k) * HOP_S for k in range(len(rows))]
        done += len(rows)
    return float(np.median(lat)), float(np.max(lat))


def bench_articulation(repeat: int) -> None:
    from engine.face.intake import decode_image
    from engine.face.pipeline import FacePipeline
    from engine.render.offline import OfflineRenderer
    from engine.speech import phonetic
    from tests.speech.lipmeter import PARTED, LipMeter, best_lag, envelope, loudness, nuclei
    face = FacePipeline.create(mode="dlib").crop(decode_image((ROOT / "tests/data/s1.jpg").read_bytes()))
    renderer = OfflineRenderer()
    source = renderer.prepare(face)
    meter = LipMeter(face.crop)
    paths: dict[str, Callable[[Pcm], np.ndarray]] = {"formant": analyse}
    if phonetic.available():
        decoder = phonetic.PhoneDecoder()
        paths["phonetic"] = lambda p: phonetic.analyse_phonetic(p, decoder)
    else:
        print("pocketsphinx not installed: the phonetic path is skipped (pip install pocketsphinx==5.1.1)")
    fps = 25.0
    print("articulation on rendered frames (s1.jpg, 512 crop, 25 fps, dlib 68 points; opened = inner-lip gap >= "
          f"{PARTED} iod within a frame of a nucleus; r at the best lag within 120 ms, loudness = amplitude^0.6, "
          "and r on the dB level)")
    print(f"{'set':<9}{'path':<10}{'voice':<16}{'text':<5}{'opened':>9}{'r':>7}{'lag ms':>8}{'r dB':>7}"
          f"{'p95 gap':>9}{'x real time':>13}")
    summary: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, voices in (("test", TEST_VOICES), ("held-out", HELD_OUT)):
            for voice, pitch in voices:
                for key, text in SENTENCES.items():
                    wav = Path(tmp) / "v.wav"
                    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(wav), text], check=True,
                                   capture_output=True)
                    pcm = decode_audio(wav.read_bytes())
                    env = envelope(pcm)
                    peaks = nuclei(env)
                    times = np.arange(0.0, pcm.duration, 1.0 / fps)
                    level = np.interp(times, np.arange(len(env)) * 0.01, env)
                    for name, fn in paths.items():
                        speed = statistics.median(pcm.duration / t for t in timed(lambda f=fn, p=pcm: f(p),
                                                                                   max(1, repeat // 3)))
                        rows = fn(pcm)
                        gap = np.array([meter.mouth(renderer.render(source, _rows_state(rows, t))).gap
                                        for t in times])
                        at = np.clip(np.round(peaks * fps).astype(int), 0, len(gap) - 1)
                        opened = np.array([gap[max(0, i - 1): i + 2].max() >= PARTED for i in at])
                        r, lag = best_lag(gap, loudness(level), 1.0 / fps)
                        r_db, _ = best_lag(gap, level, 1.0 / fps)
                        summary.setdefault((label, name), []).append((opened.mean(), r, abs(lag)))
                        print(f"{label:<9}{name:<10}{voice:<16}{key:<5}{opened.sum():>4}/{len(opened):<4}{r:>7.2f}"
                              f"{lag * 1000:>8.0f}{r_db:>7.2f}{np.percentile(gap, 95):>9.3f}{speed:>12.0f}x")
    for (label, name), vals in summary.items():
        v = np.array(vals)
        print(f"{label} {name}: opened median {100 * np.median(v[:, 0]):.0f}% (min {100 * v[:, 0].min():.0f}%), "
              f"r median {np.median(v[:, 1]):.2f} (min {v[:, 1].min():.2f}), max |lag| {1000 * v[:, 2].max():.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        pcm = speech(Path(tmp), TEXT, 24000)
    for chunk in (0.01, 0.04, 0.2):
        med, worst = live_latency(pcm, chunk)
        print(f"live path: audio -> final mouth row, {chunk * 1000:.0f} ms chunks: median {med * 1000:.0f} ms, "
              f"max {worst * 1000:.0f} ms (the provisional tail shows a closing mouth until then)")


# Sentences heavy in m, b, p, back vowels and l. The first seven gave the frames the nasal weights were fitted on
# (docs/speech.md); the last three and the voices marked held-out were never looked at while tuning.
CLOSURE_TEXTS = ["Hello, my mom bought a puppy. Please be happy.", "Mary made some more lemon jam, and I am home.",
                 "Who knew the moon would move over the old blue room?",
                 "All the small balls fell on the wall, and Lola will call.",
                 "Bob and Pam kept a map by the lamp in the dim room.",
                 "We see three green trees, and Steve is asleep.",
                 "Mimi and Emma may meet me in the evening.",
                 "A humble man may bump into a lamb among the palms.",
                 "My uncle moved the broom from the bottom of the tomb.",
                 "Please hum a warm and mellow tune for Molly."]
CLOSURE_VOICES = [("festival", "cmu_us_slt_arctic_hts", 0, "tuned"), ("festival", "kal_diphone", 0, "tuned"),
                  ("festival", "ked_diphone", 0, "tuned"), ("espeak", "en", 50, "tuned"),
                  ("espeak", "en-us+f3", 80, "tuned"), ("espeak", "en+m3", 25, "tuned"),
                  ("espeak", "en-us+f4", 95, "held-out"), ("espeak", "en-gb-x-rp+m3", 40, "held-out")]


def bench_closures() -> None:
    """Share of m, b, p where the lips meet (opening controls < 0.03 within the phone's lip_span: 30 ms either side,
    from 80 ms before espeak-ng's stops, which it times from the release; on the frames of a 25 fps render within
    the same span, inner-lip gap < SHUT iod), and of vowels, back vowels, l and w shut at their middle (the same two
    measures)."""
    import shutil

    from engine.face.intake import decode_image
    from engine.face.pipeline import FacePipeline
    from engine.render.offline import OfflineRenderer
    from tests.speech.lipmeter import SHUT, LipMeter, envelope
    from tests.speech.voices import espeak_phones, festival, is_back, is_vowel, lip_span
    if shutil.which("festival") is None:
        print("festival not installed (tools/system-deps.sh test): the recorded-speaker voices are skipped")
    face = FacePipeline.create(mode="dlib").crop(decode_image((ROOT / "tests/data/s1.jpg").read_bytes()))
    renderer = OfflineRenderer()
    source = renderer.prepare(face)
    meter = LipMeter(face.crop)
    print("closures: lips meet on m / b / p (controls: opening < 0.03 within 30 ms of the phone, 80 ms before an "
          "espeak-ng stop's release; pixels: inner-lip gap "
          f"< {SHUT} iod on a 25 fps frame there), and wrongly shut at the middle of vowels, back vowels, l, w; "
          "m level = the envelope at the m's middle under the louder vowel beside it, dB median (min, max)")
    print(f"{'voice':<26}{'set':<9}{'m':>12}{'b':>12}{'p':>12}{'vowels':>13}{'back':>11}{'l':>10}{'w':>9}"
          f"{'m level dB':>22}")
    groups = ("m", "b", "p", "vowel", "back", "l", "w")
    worst: dict[str, tuple[float, str]] = {}  # group -> (the worst voice's pixel share, that voice)
    with tempfile.TemporaryDirectory() as tmp:
        for engine_name, voice, pitch, label in CLOSURE_VOICES:
            if engine_name == "festival" and shutil.which("festival") is None:
                continue
            if engine_name == "festival" and not list(Path("/usr/share/festival/voices").glob(f"*/{voice}")):
                print(f"{voice}: not installed (kal_diphone is Debian's festvox-kallpc16k, not in the test packages)")
                continue
            count = {g: [0, 0, 0] for g in groups}  # [tokens, shut on the controls, shut on the pixels]
            m_level: list[float] = []
            for i, text in enumerate(CLOSURE_TEXTS):
                if engine_name == "festival":
                    pcm, phones = festival(text, voice, Path(tmp) / str(i))
                else:
                    pcm, phones = espeak_phones(text, voice, pitch)
                fest = engine_name == "festival"
                rows = analyse(pcm)
                opening = rows[:, :4].max(axis=1)
                env = envelope(pcm)
                animator = Animator(IdleConfig(enabled=False), 0.0)
                animator.speak(pcm, now=0.0, start=0.0)

                def gap(t: float, a: Animator = animator) -> float:
                    return meter.mouth(renderer.render(source, a.sample(t))).gap

                for j, ph in enumerate(phones):
                    mid = (ph.start + ph.end) / 2
                    if ph.name in ("m", "b", "p"):
                        a, b = lip_span(ph, fest)
                        ctrl = opening[max(0, int(np.floor(a / 0.01))): int(np.ceil(b / 0.01)) + 1].min() < 0.03
                        frames = np.arange(np.ceil(max(a, 0.0) * 25.0), np.floor(b * 25.0) + 1) / 25.0
                        pix = bool(len(frames)) and min(gap(float(t)) for t in frames) < SHUT
                        c = count[ph.name]
                        c[0], c[1], c[2] = c[0] + 1, c[1] + ctrl, c[2] + pix
                        if ph.name == "m":
                            near = [env[min(len(env) - 1, int((q.start + q.end) / 0.02))]
                                    for q in phones[max(0, j - 1): j + 2] if is_vowel(q.name, fest)]
                            if near:
                                m_level.append(env[min(len(env) - 1, int(mid / 0.01))] - max(near))
                        continue
                    kinds = [g for g, ok in (("vowel", is_vowel(ph.name, fest)), ("back", is_back(ph.name, fest)),
                                             ("l", ph.name == "l"), ("w", ph.name == "w")) if ok]
                    if not kinds or ph.end - ph.start < 0.03:
                        continue
                    ctrl = opening[min(len(opening) - 1, int(mid / 0.01))] < 0.03
                    pix = gap(mid) < SHUT
                    for g in kinds:
                        c = count[g]
                        c[0], c[1], c[2] = c[0] + 1, c[1] + ctrl, c[2] + pix
            cells = [f"{100 * c[1] / c[0]:3.0f}/{100 * c[2] / c[0]:3.0f}%" if c[0] else "-" for c in count.values()]
            for g, c in count.items():
                share, bad = 100 * c[2] / max(c[0], 1), g in ("m", "b", "p")
                if c[0] and (g not in worst or (share < worst[g][0] if bad else share > worst[g][0])):
                    worst[g] = (share, voice)
            lv = np.array(m_level)
            print(f"{voice + (f'/{pitch}' if pitch else ''):<26}{label:<9}" + "".join(
                f"{cell:>{w}}" for cell, w in zip(cells, (12, 12, 12, 13, 11, 10, 9), strict=True))
                + f"{np.median(lv):>9.1f} ({lv.min():.1f}, {lv.max():.1f})"
                + f"   n m/b/p {count['m'][0]}/{count['b'][0]}/{count['p'][0]}")
    print("cells: controls/pixels; m, b, p: the lips meet (higher is better); vowels, back, l, w: shut (lower is "
          "better)")
    print("worst voice on the frames: " + ", ".join(f"{g} {share:.0f}% ({voice})" for g, (share, voice)
                                                     in worst.items()) + "  (target: m, b, p >= 90% each)")


def _wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    import struct
    body = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"
            + struct.pack("<I", len(body)) + body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--articulation-only", action="store_true")
    parser.add_argument("--closures-only", action="store_true")
    args = parser.parse_args()
    bench_closures()
    if args.closures_only:
        return
    bench_articulation(args.repeat)
    if args.articulation_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        pcm24 = speech(Path(tmp), TEXT, 24000)  # XTTS's rate
        pcm22 = speech(Path(tmp), TEXT, 22050)
    print(f"speech: {pcm24.duration:.2f} s espeak-ng, one core (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")

    for pcm in (pcm24, pcm22):
        times = timed(lambda p=pcm: analyse(p), args.repeat)
        line(f"analysis, whole utterance at {pcm.sample_rate} Hz, x real time", [pcm.duration / t for t in times],
             "x", "{:.0f}")
    times = timed(lambda: resample(pcm24.samples, 24000, ANALYSIS_RATE), args.repeat)
    line("  of which soxr resampling 24 kHz -> 8 kHz, x real time", [pcm24.duration / t for t in times], "x",
         "{:.0f}")

    chunk = int(0.2 * pcm24.sample_rate)

    def streamed() -> list[float]:
        a = MouthAnalyser(pcm24.sample_rate)
        per = []
        for i in range(0, len(pcm24.samples), chunk):
            t = time.perf_counter()
            a.push(pcm24.samples[i: i + chunk])
            a.tail()
            per.append((time.perf_counter() - t) * 1000)
        a.finish()
        return per

    per_chunk = [ms for _ in range(args.repeat) for ms in streamed()]
    line("streaming: one 200 ms chunk (push + provisional tail), ms", per_chunk, " ms", "{:.2f}")

    bench_parselmouth(pcm22, args.repeat)

    for seconds in (1.0, 5.0):
        part = pcm24.samples[: int(seconds * 24000)]
        wav = _wav_bytes(part, 24000)

        def speak(w: bytes = wav) -> None:
            Animator(IdleConfig(enabled=False), 0.0).speak(decode_audio(w), now=0.0)

        line(f"speak cost before the reply: decode + analyse a {seconds:g} s WAV, ms",
             [t * 1000 for t in timed(speak, args.repeat)], " ms", "{:.1f}")

    anim = Animator(IdleConfig(seed=1), 0.0)
    anim.set_expression("happy", 0.6, 250, now=0.0)
    anim.speak(pcm24, now=0.0, start=0.0)
    n = int(pcm24.duration * 25)
    per_frame = timed(lambda: [anim.sample(i / 25) for i in range(n)], args.repeat)
    line("Animator.sample while speaking (idle on), us per frame", [t / n * 1e6 for t in per_frame], " us")

    five = Pcm(pcm24.samples[: 5 * 24000], 24000)
    count = frame_count(five.duration, 25.0)
    try:
        from engine.face.intake import decode_image
        from engine.face.pipeline import FacePipeline
        from engine.render.offline import OfflineRenderer
    except ImportError as exc:
        print(f"offline renderer unavailable ({exc}): skipped the clips")
        return
    face = FacePipeline.create(mode="dlib").crop(decode_image((ROOT / "tests/data/s1.jpg").read_bytes()))
    renderer = OfflineRenderer()
    source = renderer.prepare(face)
    talking = Animator(IdleConfig(seed=1), 0.0)
    talking.speak(five, now=0.0, start=0.0)
    frames = [renderer.render(source, talking.sample(i / 25)) for i in range(count)]
    enc = timed(lambda: encode_mp4(iter(frames), 25.0, five), max(3, args.repeat // 2))
    line("MP4 writing only (H.264 512x512 + AAC), 5 s at 25 fps, s", enc, " s", "{:.2f}")
    full = timed(lambda: render_speech_clip(five, lambda s: renderer.render(source, s),
                                            Animator(IdleConfig(seed=1), 0.0)), max(3, args.repeat // 2))
    line("offline renderer + MP4, 5 s clip at 25 fps (512 crop), s", full, " s", "{:.2f}")


if __name__ == "__main__":
    main()
