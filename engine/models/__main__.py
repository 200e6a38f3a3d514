"""``python -m engine.models download|verify|table [--dir DIR]``: fetch and check the model files.

Exit status: 0 when every file is present and matches the table, 1 when files are missing, 2 when a file does not
match (size or sha256) or the table is unreadable. The container entrypoint runs ``download --dir /app/models``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.errors import ModelsMissing, WeightsInvalid
from engine.models import download as dl
from engine.models.layout import FILES, HF_REPO

EXIT_OK, EXIT_MISSING, EXIT_INVALID = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m engine.models", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("download", "verify", "table"),
                    help="download: fetch what is absent or wrong, then verify; verify: check only; "
                         "table: print a JSON table (size, sha256) of the files found")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("LP_MODELS_DIR", "models")),
                    help="models folder in the HuggingFace repo layout (default: $LP_MODELS_DIR or ./models)")
    ap.add_argument("--only", choices=("all", "liveportrait", "face"), default="all",
                    help="restrict to the LivePortrait networks or to the face detection models")
    ap.add_argument("--table", type=Path, default=None,
                    help="JSON table of expected files [{path, size, sha256}] instead of the pinned one")
    ap.add_argument("--repo", default=HF_REPO, help="HuggingFace repo id")
    ap.add_argument("--endpoint", default=None, help="hub endpoint (default: $HF_ENDPOINT or huggingface.co)")
    ap.add_argument("--timeout", type=float, default=dl.DEFAULT_TIMEOUT_S, help="per-request timeout, seconds")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        files = dl.table_from_json(args.table) if args.table else FILES
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.only != "all":
        files = tuple(f for f in files if f.role == args.only)

    if args.command == "table":
        present = [f.path for f in files if (args.dir / f.path).is_file()]
        print(dl.table_to_json(dl.describe(args.dir, present)))
        return EXIT_OK if len(present) == len(files) else EXIT_MISSING

    try:
        if args.command == "download":
            report = dl.download(args.dir, files, repo_id=args.repo, endpoint=args.endpoint,
                                 timeout_s=args.timeout, progress=not args.no_progress)
        else:
            report = dl.verify(args.dir, files)
            report.raise_for_problems()
    except ModelsMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MISSING
    except WeightsInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(report.message())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
