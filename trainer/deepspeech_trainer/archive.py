"""Checkpoint tarballs (.tar.gz): one set of rules for preflight (which streams the tarball from S3 and
extracts nothing) and train (which extracts it into the work dir), so that a tarball preflight passes is
one train accepts.

A member is refused, naming it, when it is not a regular file or folder (links, devices, sparse
files), when its path is absolute or climbs out with '..', when it is larger than the per-member
limit, or when the members together exceed the total limit. The limits are derived from the size of
the work dir (`DST_WORK_DIR_SIZE`, set by the operator from `spec.resources.workDirSize`; else the size
of the filesystem holding it), because that is where train downloads and extracts the tarball, beside
the staged audio and the run's own checkpoints. flags.txt and alphabet.txt are read whole by both
commands and are a few KB in practice: they get a small limit of their own.

Sizes are the uncompressed ones: gzip is decompressed here, below tarfile, so every decompressed byte
is counted, including tarfile's own header reads (a PAX header is read into memory whole, so each
header gets a small budget of its own).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from deepspeech_trainer.exitcodes import InvalidInput

WORK_DIR_SIZE_ENV = "DST_WORK_DIR_SIZE"
TEXT_MEMBERS = ("flags.txt", "alphabet.txt")
TEXT_MEMBER_MAX = 1024 * 1024
MAX_MEMBERS = 1000  # a DeepSpeech checkpoint has about 10 files; tarfile keeps every header in memory
HEADER_BUDGET = 1024 * 1024  # per header: tar/PAX/GNU long-name blocks plus tarfile's read-ahead
BLOCK = tarfile.BLOCKSIZE

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_quantity(text: str) -> int | None:
    """Bytes of a Kubernetes quantity such as 50Gi or 500M; None when it is not one."""
    m = _QUANTITY.match(text.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _FACTORS[m.group(2)])


def human(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class ArchiveLimits:
    """Uncompressed bytes a checkpoint tarball may hold: a quarter of the work dir in all, an eighth per
    member (the rest of the work dir holds the compressed download, the audio cache and the run's
    checkpoints)."""

    work_dir_bytes: int

    @property
    def total(self) -> int:
        return self.work_dir_bytes // 4

    @property
    def member(self) -> int:
        return self.work_dir_bytes // 8

    def describe(self) -> str:
        return (
            f"at most {human(self.total)} uncompressed in all and {human(self.member)} per member "
            f"(a quarter and an eighth of the {human(self.work_dir_bytes)} work dir), "
            f"{human(TEXT_MEMBER_MAX)} for flags.txt/alphabet.txt, {MAX_MEMBERS} members"
        )

    @classmethod
    def for_work_dir(cls, work_dir: Path, env: Mapping[str, str] | None = None) -> ArchiveLimits:
        env = os.environ if env is None else env
        configured = env.get(WORK_DIR_SIZE_ENV)
        if configured:
            size = parse_quantity(configured)
            if size is None or size <= 0:
                raise InvalidInput(f"{WORK_DIR_SIZE_ENV}: {configured!r} is not a size such as 50Gi")
            return cls(size)
        existing = Path(work_dir)
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        return cls(shutil.disk_usage(existing).total)


def text_file_problem(name: str, size: int) -> str | None:
    """flags.txt/alphabet.txt are read whole (from a tarball or a checkpoint folder): a small limit."""
    if PurePosixPath(name).name in TEXT_MEMBERS and size > TEXT_MEMBER_MAX:
        return f"is {human(size)}, more than {human(TEXT_MEMBER_MAX)}"
    return None


class ArchiveRules:
    """Checks members in archive order; raises InvalidInput naming the first one that breaks a rule."""

    def __init__(self, limits: ArchiveLimits, where: str) -> None:
        self.limits = limits
        self.where = where  # "<field>: <uri>"
        self.total = 0
        self.count = 0

    def refuse(self, name: str, why: str) -> InvalidInput:
        return InvalidInput(
            f"{self.where}: tarball member {name!r} {why}; refused ({self.limits.describe()})"
        )

    def check(self, member: tarfile.TarInfo) -> None:
        name = member.name
        self.count += 1
        if self.count > MAX_MEMBERS:
            raise self.refuse(name, f"is member number {self.count}, more than {MAX_MEMBERS}")
        path = PurePosixPath(name)
        if name.startswith(("/", "\\")) or path.is_absolute() or ".." in path.parts:
            raise self.refuse(name, "would be written outside the target folder")
        if member.issparse() or not (member.isfile() or member.isdir()):
            raise self.refuse(name, "is a link, device or sparse file; only files and folders are allowed")
        if member.isdir():
            return
        text_problem = text_file_problem(name, member.size)
        if text_problem:
            raise self.refuse(name, text_problem)
        if member.size > self.limits.member:
            raise self.refuse(
                name, f"is {human(member.size)} uncompressed, more than {human(self.limits.member)}"
            )
        self.total += member.size
        if self.total > self.limits.total:
            raise self.refuse(
                name,
                f"brings the tarball to {human(self.total)} uncompressed, more than {human(self.limits.total)}",
            )


class _OverBudget(Exception):
    pass


class _Budgeted:
    """Read-only file object over decompressed bytes that refuses to read more than it was allowed."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.left = 0

    def read(self, n: int = -1) -> bytes:
        # tarfile reads ahead in 10 KiB records: a short read near the end of the budget is fine, an
        # empty one would look like the end of the archive, so running out is an error instead.
        want = self.left if n is None or n < 0 else min(n, self.left)
        if want == 0 and n != 0:
            raise _OverBudget
        data = self.raw.read(want)
        self.left -= len(data)
        return data


def members(fileobj: BinaryIO, rules: ArchiveRules) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Stream the members of a gzipped tar, each checked by `rules` before it is yielded.

    The caller may read or extract the yielded member (streaming: only the current one). Decompressed
    reads are bounded by the members' declared sizes plus a small budget per header.
    """
    budget = _Budgeted(gzip.GzipFile(fileobj=fileobj, mode="rb"))
    budget.left = HEADER_BUDGET
    last = "(start)"
    try:
        with tarfile.open(fileobj=budget, mode="r|") as tar:  # type: ignore[call-overload]
            while (member := tar.next()) is not None:
                rules.check(member)
                last = member.name
                # The member's data (what tarfile skips if nobody reads it) plus the next header.
                budget.left = -(-member.size // BLOCK) * BLOCK + HEADER_BUDGET
                yield tar, member
    except _OverBudget:
        raise InvalidInput(
            f"{rules.where}: tarball header after member {last!r} is larger than {human(HEADER_BUDGET)}; "
            "refused"
        ) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise InvalidInput(f"{rules.where}: not a readable .tar.gz checkpoint: {exc}") from exc


def extract(tar_path: Path, dest: Path, rules: ArchiveRules) -> None:
    """Extract the checked members into `dest`; on a refused member nothing is left behind."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tar_path.open("rb") as fh:
            for tar, member in members(fh, rules):
                try:
                    tar.extract(member, dest, filter="data")  # the stdlib's own checks, on top of ours
                except tarfile.TarError as exc:
                    raise rules.refuse(member.name, f"cannot be extracted ({exc})") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def read_text_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """The bytes of a (checked, so small) text member of the stream."""
    data = tar.extractfile(member)
    return data.read(TEXT_MEMBER_MAX + 1) if data else b""
