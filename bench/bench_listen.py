"""Listening figures: where the backchannel nods land, how often a question raises the brows, what a chunk costs.

    python bench/bench_listen.py [--chunks 0.02,0.1,0.2]

Per espeak-ng voice (test and held-out voices, men and women, several languages), two statements and a yes/no
question, each followed by a pause, are streamed through engine.animation.listener.Listener as microphone chunks at
real-time engine times (as `user_audio` places them). Printed: the nods' start into the pause (seconds after the
last loud sample; the target is 0.3-0.8 s), nods that start while the user talks (should be 0), pauses that got a nod,
brow raises after the question and after the statements, and the analysis time per 100 ms chunk on this machine.
Numbers only: no pass/fail (tests/animation/test_listener.py and tests/service/test_listen.py hold the bounds).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation.listener import Listener  # noqa: E402
from engine.speech.audio import decode_audio  # noqa: E402

RATE = 16_000
VOICES = [("en", 50), ("en-us+f3", 80), ("en-gb-x-rp+m3", 25), ("en-us+f4", 95), ("de", 40), ("fr+f2", 70),
          ("es+m1", 40), ("nl", 50)]
SCRIPTS = {
    "en": [("I went to the market this morning and bought some bread.", 1.5), ("Then I walked home slowly.", 1.5),
           ("Is that true?", 1.5)],
    "de": [("Ich bin heute morgen zum Markt gegangen und habe Brot gekauft.", 1.5),
           ("Dann bin ich langsam nach Hause gelaufen.", 1.5), ("Ist das wahr?", 1.5)],
    "fr": [("Je suis allé au marché ce matin et j'ai acheté du pain.", 1.5), ("Puis je suis rentré lentement.", 1.5),
           ("C'est vrai?", 1.5)],
    "es": [("Fui al mercado esta mañana y compré un poco de pan.", 1.5), ("Luego volví a casa despacio.", 1.5),
           ("¿Es verdad?", 1.5)],
    "nl": [("Ik ging vanochtend naar de markt en kocht wat brood.", 1.5), ("Toen liep ik langzaam naar huis.", 1.5),
           ("Is dat waar?", 1.5)],
}


def voice_signal(folder: Path, voice: str, pitch: int, script: Sequence[tuple[str, float]] | None = None,
                 ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """espeak-ng phrases with a pause after each, at RATE: the signal and each phrase's (start, end) of talk.
    ``script`` (text, pause s) defaults to the voice's language's."""
    script = script or SCRIPTS.get(voice.split("-")[0].split("+")[0], SCRIPTS["en"])
    parts, talk, u = [], [], 0.0
    for i, (text, pause) in enumerate(script):
        wav = folder / f"{voice}{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "-w", str(wav), text], check=True,
                       capture_output=True)
        pcm = decode_audio(wav.read_bytes())
        x = np.interp(np.arange(0, pcm.duration, 1 / RATE), np.arange(len(pcm.samples)) / pcm.sample_rate,
                      pcm.samples).astype(np.float32)
        loud = np.nonzero(np.abs(x) > 0.02)[0]
        talk.append((u + loud[0] / RATE, u + loud[-1] / RATE))
        parts += [x, np.zeros(int(pause * RATE), np.float32)]
        u += len(x) / RATE + pause
    return np.concatenate(parts), talk


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {np.median(values):.3f}, min {min(values):.3f}, max {max(values):.3f} (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", default="0.02,0.1,0.2", help="chunk lengths in seconds, comma separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        signals = [(v, *voice_signal(Path(tmp), v, p)) for v, p in VOICES]
    cost: list[float] = []
    for chunk_s in (float(c) for c in args.chunks.split(",")):
        into, during, pauses_nodded, q_brows, s_brows = [], 0, 0, 0, 0
        for _voice, x, talk in signals:
            listener = Listener()
            n = int(chunk_s * RATE)
            for i in range(0, len(x), n):
                started = time.perf_counter()
                listener.hear(x[i:i + n], RATE, (i + len(x[i:i + n])) / RATE)
                if abs(chunk_s - 0.1) < 1e-9:
                    cost.append((time.perf_counter() - started) * 1000)
            listener.offsets(len(x) / RATE + 5.0)
            for e in listener.events:
                if any(a <= e.start <= b for a, b in talk):
                    during += e.kind == "nod"
            for k, (_a, b) in enumerate(talk):
                nod = [e.start - b for e in listener.events if e.kind == "nod" and b < e.start < b + 1.5]
                brow = any(e.kind == "brow" and b - 0.3 < e.start < b + 1.5 for e in listener.events)
                if nod:
                    pauses_nodded += 1
                    into += nod
                if k == len(talk) - 1:
                    q_brows += brow
                else:
                    s_brows += brow
        voices = len(signals)
        print(f"chunks of {chunk_s * 1000:.0f} ms, {voices} voices:")
        print(f"  nod start into the pause (s): {stats(into)}")
        print(f"  nods starting while the user talks: {during}; pauses with a nod: {pauses_nodded}/{3 * voices} "
              "(the question is short, and the second statement's pause often comes < 3 s after the first nod)")
        print(f"  brows after the question: {q_brows}/{voices}; after a statement: {s_brows}/{2 * voices}")
    print(f"analysis per 100 ms chunk (ms): {stats(cost)}")


if __name__ == "__main__":
    main()
