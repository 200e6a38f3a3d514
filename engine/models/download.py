"""Fetch the model files from the HuggingFace repo and verify them against the pinned sizes and sha256.

Download is ``huggingface_hub.snapshot_download`` restricted to our files (its progress bars, its resumable
partial files under ``<dir>/.cache/huggingface``); verification is ours and strict: a file that is absent, of the
wrong size or of the wrong sha256 is an error naming the file and where it belongs, never a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ModelsMissing, WeightsInvalid
from engine.models.layout import FILES, HF_REPO, ModelFile

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0  # connect / first-byte timeout of each request: offline must fail fast, not hang
CHUNK = 1 << 20


@dataclass(frozen=True)
class FileProblem:
    """One file that does not match the table: ``kind`` is "missing", "size" or "sha256"."""

    path: str
    kind: str
    detail: str


@dataclass
class VerifyReport:
    """The outcome of checking a models folder against a table of expected files."""

    models_dir: Path
    files: tuple[ModelFile, ...]
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def missing(self) -> list[str]:
        return [p.path for p in self.problems if p.kind == "missing"]

    @property
    def mismatched(self) -> list[str]:
        return [p.path for p in self.problems if p.kind != "missing"]

    def message(self) -> str:
        if self.ok:
            return f"{len(self.files)} model files verified in {self.models_dir}"
        lines = [f"{len(self.problems)} of {len(self.files)} model files in {self.models_dir} are not usable:"]
        lines += [f"  {p.kind:8s} {self.models_dir / p.path}: {p.detail}" for p in self.problems]
        lines.append(fix_hint(self.models_dir))
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """ModelsMissing when files are absent, WeightsInvalid when present files do not match."""
        if self.mismatched:
            raise WeightsInvalid(self.message())
        if self.missing:
            raise ModelsMissing(self.message())


def fix_hint(models_dir: Path) -> str:
    return (
        f"Fix: run `python -m engine.models download --dir {models_dir}` on a machine that can reach huggingface.co, "
        f"or copy the files of the HuggingFace repo {HF_REPO} into {models_dir} keeping the repo's folder layout "
        f"(e.g. liveportrait/base_models/warping_module.pth), then `python -m engine.models verify --dir {models_dir}`."
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_file(models_dir: Path, spec: ModelFile, check_hash: bool = True) -> FileProblem | None:
    path = models_dir / spec.path
    if not path.is_file():
        return FileProblem(spec.path, "missing", f"not found ({spec.size} bytes expected)")
    size = path.stat().st_size
    if size != spec.size:
        what = "truncated or partial" if size < spec.size else "larger than the pinned file"
        return FileProblem(spec.path, "size", f"{size} bytes, expected {spec.size} ({what})")
    if check_hash:
        digest = sha256_file(path)
        if digest != spec.sha256:
            return FileProblem(spec.path, "sha256", f"sha256 {digest}, expected {spec.sha256}")
    return None


def verify(models_dir: Path, files: Iterable[ModelFile] = FILES, check_hash: bool = True) -> VerifyReport:
    """Check every file of ``files`` (default: the pinned table) in ``models_dir``; never raises for a bad file."""
    root = Path(models_dir)
    table = tuple(files)
    problems = [p for spec in table if (p := check_file(root, spec, check_hash)) is not None]
    return VerifyReport(root, table, problems)


def download(
    models_dir: Path,
    files: Iterable[ModelFile] = FILES,
    repo_id: str = HF_REPO,
    endpoint: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> VerifyReport:
    """Bring ``models_dir`` to a verified state: fetch only the files that are absent or wrong, then verify all.

    Raises ModelsMissing when the hub cannot be reached (what is missing and where to put it is in the message)
    and WeightsInvalid when a downloaded file does not match the pinned table.
    """
    root = Path(models_dir)
    table = tuple(files)
    before = verify(root, table)
    if before.ok:
        log.info("all %d model files already present and verified in %s", len(table), root)
        return before
    for problem in before.problems:
        if problem.kind != "missing":
            # A complete-looking but wrong file would be trusted by the hub client's local cache; drop it.
            log.warning("removing %s (%s) before downloading it again", root / problem.path, problem.detail)
            (root / problem.path).unlink()
            _drop_hub_metadata(root, problem.path)
    wanted = [p.path for p in before.problems]
    root.mkdir(parents=True, exist_ok=True)
    # Read at import time by huggingface_hub: set before the import so an offline machine fails fast.
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout_s)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(timeout_s)))
    if not progress:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ModelsMissing(f"huggingface_hub is not installed ({exc}). {fix_hint(root)}") from exc
    where = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    log.info("downloading %d files of %s from %s into %s", len(wanted), repo_id, where, root)
    try:
        snapshot_download(
            repo_id=repo_id,
            allow_patterns=wanted,
            local_dir=root,
            etag_timeout=timeout_s,
            endpoint=endpoint,
        )
    except Exception as exc:  # the hub client raises many types (offline, 401/404, timeouts, disk full)
        missing = "\n".join(f"  {root / path}" for path in wanted)
        raise ModelsMissing(
            f"could not download {len(wanted)} model files of {repo_id} from {where}: "
            f"{type(exc).__name__}: {_first_line(exc)}\nStill missing or invalid:\n{missing}\n{fix_hint(root)}"
        ) from exc
    after = verify(root, table)
    after.raise_for_problems()
    return after


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _drop_hub_metadata(root: Path, relpath: str) -> None:
    meta = root / ".cache" / "huggingface" / "download" / f"{relpath}.metadata"
    meta.unlink(missing_ok=True)


# -- tables: the pinned one, or one given as JSON (tests, or pinning a new release) ---------------------------------
def table_from_json(path: Path) -> tuple[ModelFile, ...]:
    """``[{"path", "size", "sha256", "role"?}, ...]`` -> ModelFile rows."""
    try:
        rows = json.loads(Path(path).read_text())
        return tuple(ModelFile(r["path"], int(r["size"]), str(r["sha256"]).lower(), r.get("role", "")) for r in rows)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a table of model files ({exc})") from exc


def describe(models_dir: Path, paths: Iterable[str], role: str = "") -> tuple[ModelFile, ...]:
    """Rows (size, sha256) for files present in ``models_dir``: what ``table_from_json`` reads back."""
    root = Path(models_dir)
    return tuple(ModelFile(p, (root / p).stat().st_size, sha256_file(root / p), role) for p in paths)


def table_to_json(files: Iterable[ModelFile]) -> str:
    return json.dumps([{"path": f.path, "size": f.size, "sha256": f.sha256, "role": f.role} for f in files], indent=1)
