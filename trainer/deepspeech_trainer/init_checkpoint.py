"""The init checkpoint of a fine-tune or transfer (`spec.initFrom.checkpoint`): fetched into the work dir.

It may be an S3 folder, an S3 tarball or an https tarball. A tarball is unpacked under the same rules
preflight checks it with (deepspeech_trainer.archive), so what preflight passed, train can unpack.
"""

from __future__ import annotations

import logging
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deepspeech_trainer import archive, s3
from deepspeech_trainer.alphabet import parse_alphabet
from deepspeech_trainer.archive import ArchiveLimits, ArchiveRules
from deepspeech_trainer.checkpoint_files import ALPHABET_TXT, FLAGS_TXT, parse_flags_txt
from deepspeech_trainer.exitcodes import InvalidInput, TransientError
from deepspeech_trainer.tf_state_file import (
    BEST_DEV_STATE,
    STATE_FILES,
    TRAIN_STATE,
    read_prefixes,
    rewrite_local_state_files,
    state_prefixes,
)

log = logging.getLogger(__name__)

FIELD = "spec.initFrom.checkpoint"
HTTP_TIMEOUT_S = 10


@dataclass
class SourceCheckpoint:
    directory: Path
    load: Literal["best", "last"]  # "best" when a best_dev_checkpoint is present
    flags: dict[str, str]
    alphabet: list[str] | None


def is_tarball(uri: str) -> bool:
    return uri.lower().endswith((".tar.gz", ".tgz"))


def check_tarball_size(size: int, limits: ArchiveLimits, where: str, *, so_far: bool = False) -> None:
    """Refuse a tarball bigger than the work dir allows for its unpacked files: it cannot fit once
    unpacked either, and refusing before the download saves fetching it whole."""
    if size > limits.total:
        raise InvalidInput(
            f"{where}: the tarball is {'at least ' if so_far else ''}{archive.human(size)}, more than the "
            f"{archive.human(limits.total)} "
            "a checkpoint may take in the work dir (spec.resources.workDirSize)"
        )


def safe_extract(tar_path: Path, dest: Path, where: str = FIELD, limits: ArchiveLimits | None = None) -> None:
    """Extract a checkpoint tarball under the rules preflight applies too (deepspeech_trainer.archive)."""
    limits = limits or ArchiveLimits.for_work_dir(dest)
    archive.extract(tar_path, dest, ArchiveRules(limits, where))


def _find_checkpoint_dir(root: Path) -> Path | None:
    """The shallowest folder holding a state file: tarballs often wrap the checkpoint in a folder."""
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts)):
        if path.name in STATE_FILES and path.is_file():
            return path.parent
    return None


def fetch_init_checkpoint(storage: s3.Storage, uri: str, dest: Path, scratch: Path) -> SourceCheckpoint:
    """Fetch `initFrom.checkpoint` (S3 folder, S3 tarball or https tarball) into `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    scratch.mkdir(parents=True, exist_ok=True)
    if is_tarball(uri):
        tar_path = scratch / "init-checkpoint.tar.gz"
        limits = ArchiveLimits.for_work_dir(scratch)
        if uri.startswith("https://"):
            _download_https(uri, tar_path, limits)
        else:
            src = s3.parse_s3_uri(uri, FIELD)
            with s3.s3_errors(uri, FIELD):
                meta = s3.head(storage, src)
                if meta is not None:
                    check_tarball_size(meta["ContentLength"], limits, f"{FIELD}: {uri}")
                storage.manager.download(src.bucket, src.key, str(tar_path)).result()
        unpacked = scratch / "init-checkpoint"
        if unpacked.exists():
            shutil.rmtree(unpacked)
        safe_extract(tar_path, unpacked, f"{FIELD}: {uri}", limits)
        found = _find_checkpoint_dir(unpacked)
        if found is None:
            raise InvalidInput(f"{FIELD}: {uri} contains no 'checkpoint' or 'best_dev_checkpoint' state file")
        shutil.move(str(found), str(dest))
        tar_path.unlink(missing_ok=True)
    elif uri.startswith("s3://"):
        _download_folder(storage, s3.parse_s3_uri(uri, FIELD).folder, dest)
    else:
        raise InvalidInput(f"{FIELD}: {uri!r} must be an s3:// folder or tarball, or an https:// tarball")
    return _describe_local(dest, uri)


def _download_https(url: str, target: Path, limits: ArchiveLimits) -> None:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp, target.open("wb") as out:
            written = 0
            while chunk := resp.read(1024 * 1024):
                written += len(chunk)
                check_tarball_size(written, limits, f"{FIELD}: {url}", so_far=True)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        err = InvalidInput if 400 <= exc.code < 500 else TransientError
        raise err(f"{FIELD}: {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TransientError(f"{FIELD}: {url}: {exc}") from exc


def _download_folder(storage: s3.Storage, folder: s3.S3Uri, dest: Path) -> None:
    """Only what the state files name (and flags.txt, alphabet.txt): a folder may hold much else."""
    with s3.s3_errors(folder, FIELD):
        names = [o["Key"][len(folder.key) :] for o in s3.list_objects(storage, folder, delimiter="/")]
        states = [n for n in STATE_FILES if n in names]
        if not states:
            raise InvalidInput(f"{FIELD}: {folder} holds no 'checkpoint' or 'best_dev_checkpoint' state file")
        wanted: list[str] = []
        for state in states:
            text = s3.get_bytes(storage, folder.child(state)).decode()
            for prefix in state_prefixes(text):
                wanted += [n for n in names if n.startswith(prefix + ".")]
        wanted += states + [n for n in (FLAGS_TXT, ALPHABET_TXT) if n in names]
        dest.mkdir(parents=True, exist_ok=True)
        futures = [
            storage.manager.download(folder.bucket, folder.child(n).key, str(dest / n))
            for n in dict.fromkeys(wanted)
        ]
        for fut in futures:
            fut.result()


def _small_text(path: Path, uri: str) -> str | None:
    """flags.txt/alphabet.txt of a fetched checkpoint, under the size rule preflight applied."""
    if not path.is_file():
        return None
    problem = archive.text_file_problem(path.name, path.stat().st_size)
    if problem:
        raise InvalidInput(f"{FIELD}: {uri}: {path.name} {problem}")
    return path.read_text(encoding="utf-8")


def _describe_local(directory: Path, uri: str) -> SourceCheckpoint:
    rewrite_local_state_files(directory)
    load: Literal["best", "last"] = "best" if (directory / BEST_DEV_STATE).is_file() else "last"
    state = BEST_DEV_STATE if load == "best" else TRAIN_STATE
    prefixes = read_prefixes(directory, state)
    if not prefixes or not (directory / f"{prefixes[0]}.index").is_file():
        raise InvalidInput(f"{FIELD}: {uri}: {state} names {prefixes[:1]} but its .index file is missing")
    flags_txt = _small_text(directory / FLAGS_TXT, uri)
    flags = parse_flags_txt(flags_txt) if flags_txt is not None else {}
    alphabet_txt = _small_text(directory / ALPHABET_TXT, uri)
    alphabet = parse_alphabet(alphabet_txt, f"{uri} alphabet.txt") if alphabet_txt is not None else None
    log.info("init checkpoint %s: %s (load %s)", uri, prefixes[0], load)
    return SourceCheckpoint(directory, load, flags, alphabet)
