"""Upload the exported model and test results to `<output.uri>/<run id>/` with a SHA256SUMS file."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from deepspeech_trainer import s3
from deepspeech_trainer.exitcodes import InvalidInput

log = logging.getLogger(__name__)

SUMS = "SHA256SUMS"
MODEL_SUFFIXES = (".pb", ".pbmm", ".tflite")


@dataclass(frozen=True)
class Published:
    uri: str  # folder of this run's model
    files: list[str]  # names below it, SHA256SUMS last


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def sums_text(entries: Iterable[tuple[str, str]]) -> str:
    """`sha256sum` format (two spaces, binary mode not marked) so `sha256sum -c SHA256SUMS` works."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(entries))


def collect(export_dirs: Iterable[Path], extra_files: Iterable[Path]) -> list[tuple[Path, str]]:
    """(local file, published name) for every exported file and extra file; names must be unique."""
    out: dict[str, Path] = {}
    for directory in export_dirs:
        if not directory.is_dir():
            continue
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            # Both exports write the same metadata .md; the one from the .pb export is enough.
            out.setdefault(path.name, path)
    for path in extra_files:
        if path.is_file():
            out[path.name] = path
    return [(p, n) for n, p in out.items()]


def verify_export(export_dir: Path, tflite: bool = False) -> list[Path]:
    """The model file and metadata must exist and be non-empty (0.6.0 can exit 0 without a model)."""
    suffix = ".tflite" if tflite else ".pb"
    models = [p for p in export_dir.glob(f"*{suffix}") if p.is_file()] if export_dir.is_dir() else []
    if not models:
        raise RuntimeError(f"export produced no {suffix} model in {export_dir}")
    empty = [p for p in models if p.stat().st_size == 0]
    if empty:
        raise RuntimeError(f"exported model {empty[0]} is empty")
    return models


def publish(storage: s3.Storage, output_uri: str, run_path: str, files: list[tuple[Path, str]]) -> Published:
    """Upload `files` in parallel, then SHA256SUMS (last: its presence means the set is complete)."""
    base = s3.parse_s3_uri(output_uri, "spec.output.uri").folder.child(run_path).folder
    if not files:
        raise InvalidInput("nothing to publish")
    sums = [(name, sha256_file(path)) for path, name in files]
    with s3.s3_errors(base, "spec.output.uri"):
        futures = [
            storage.manager.upload(str(path), base.bucket, base.child(name).key) for path, name in files
        ]
        for fut in futures:
            fut.result()
        s3.put_bytes(storage, base.child(SUMS), sums_text(sums).encode(), "text/plain")
    names = [*sorted(name for _, name in files), SUMS]
    log.info("published %d file(s) to %s", len(names), base)
    return Published(str(base), names)
