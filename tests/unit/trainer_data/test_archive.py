"""Checkpoint tarball rules: the same for preflight's streamed scan and train's extraction."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
from deepspeech_trainer import archive
from deepspeech_trainer.archive import ArchiveLimits, ArchiveRules, parse_quantity
from deepspeech_trainer.exitcodes import InvalidInput

MiB = 1024 * 1024
SMALL = ArchiveLimits(64 * MiB)  # 16 MiB in all, 8 MiB per member


def tarball(
    path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]], *, pax: dict | None = None
) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=pax or {}) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry, io.BytesIO(b"\0" * entry.size) if entry.isfile() else None)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def declared_only(path: Path, name: str, size: int) -> Path:
    """A .tar.gz whose header declares `size` bytes for `name` but holds only a block of them: the
    rules must refuse it from the header, before reading (or writing) any of its data."""
    info = tarfile.TarInfo(name)
    info.size = size
    path.write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 512))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def scan(path: Path, limits: ArchiveLimits = SMALL) -> list[str]:
    rules = ArchiveRules(limits, "spec.initFrom.checkpoint: s3://m/c.tar.gz")
    with path.open("rb") as fh:
        return [m.name for _, m in archive.members(fh, rules)]


def extract(path: Path, dest: Path, limits: ArchiveLimits = SMALL) -> None:
    archive.extract(path, dest, ArchiveRules(limits, "spec.initFrom.checkpoint: s3://m/c.tar.gz"))


def both_refuse(path: Path, dest: Path, pattern: str, limits: ArchiveLimits = SMALL) -> None:
    with pytest.raises(InvalidInput, match=pattern):
        scan(path, limits)
    with pytest.raises(InvalidInput, match=pattern):
        extract(path, dest, limits)
    assert not dest.exists(), "a refused tarball leaves nothing behind"


def test_good_checkpoint_passes_both(tmp_path: Path) -> None:
    entries = [("ck/checkpoint", b'model_checkpoint_path: "train-5"\n'), ("ck/flags.txt", b"--n_hidden=64\n")]
    entries.append(("ck/train-5.data-00000-of-00001", b"\1" * (2 * MiB)))
    path = tarball(tmp_path / "ck.tar.gz", entries)
    assert scan(path) == ["ck/checkpoint", "ck/flags.txt", "ck/train-5.data-00000-of-00001"]
    extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "ck" / "train-5.data-00000-of-00001").stat().st_size == 2 * MiB


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        (link("ck/flags.txt", "/etc/passwd"), r"'ck/flags.txt' is a link"),
        (link("ck/checkpoint", "ck/other", tarfile.LNKTYPE), r"'ck/checkpoint' is a link"),
        (("../../escape.txt", b"x"), r"'../../escape.txt' would be written outside"),
        (("ck/../../escape.txt", b"x"), r"'ck/../../escape.txt' would be written outside"),
        (("/abs/checkpoint", b"x"), r"'/abs/checkpoint' would be written outside"),
    ],
)
def test_links_and_escapes_are_refused_by_both(tmp_path: Path, entry, pattern: str) -> None:
    path = tarball(tmp_path / "evil.tar.gz", [("ck/a", b"fine"), entry])
    both_refuse(path, tmp_path / "out", pattern)


def test_declared_member_size_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = declared_only(tmp_path / "bomb.tar.gz", "ck/train-1.data-00000-of-00001", 3 * 1024 * MiB)
    both_refuse(
        path, tmp_path / "out", r"'ck/train-1.data-00000-of-00001' is 3.0 GiB uncompressed, more than 8.0 MiB"
    )


def test_a_1_gib_flags_txt_is_refused_under_any_work_dir(tmp_path: Path) -> None:
    path = declared_only(tmp_path / "flags.tar.gz", "ck/flags.txt", 1024 * MiB)
    both_refuse(
        path, tmp_path / "out", r"'ck/flags.txt' is 1.0 GiB, more than 1.0 MiB", ArchiveLimits(1024**4)
    )


def test_real_zeros_bomb_counts_uncompressed_bytes(tmp_path: Path) -> None:
    # 20 MiB of zeros compress to about 20 KB: the member limit applies to what it unpacks to.
    info = tarfile.TarInfo("ck/train-1.data-00000-of-00001")
    info.size = 20 * MiB
    path = tarball(tmp_path / "zeros.tar.gz", [info])
    assert path.stat().st_size < 100_000
    both_refuse(path, tmp_path / "out", r"is 20.0 MiB uncompressed, more than 8.0 MiB")


def test_members_together_over_the_total_are_refused_naming_the_one_that_crosses(tmp_path: Path) -> None:
    entries = [(f"ck/part-{i}", b"\0" * (6 * MiB)) for i in range(4)]
    path = tarball(tmp_path / "many.tar.gz", entries)
    both_refuse(
        path, tmp_path / "out", r"'ck/part-2' brings the tarball to 18.0 MiB uncompressed, more than 16.0 MiB"
    )


def test_too_many_members(tmp_path: Path) -> None:
    path = tarball(tmp_path / "n.tar.gz", [(f"ck/f{i}", b"") for i in range(archive.MAX_MEMBERS + 1)])
    both_refuse(path, tmp_path / "out", rf"'ck/f{archive.MAX_MEMBERS}' is member number")


def test_huge_pax_header_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tarball(tmp_path / "pax.tar.gz", [("ck/checkpoint", b"x")], pax={"comment": "x" * (3 * MiB)})
    both_refuse(path, tmp_path / "out", r"tarball header after member '\(start\)' is larger than 1.0 MiB")


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(b"this is not a tarball at all" * 100)
    both_refuse(path, tmp_path / "out", "not a readable .tar.gz")


def test_limits_from_the_work_dir_size() -> None:
    limits = ArchiveLimits.for_work_dir(Path("/nonexistent/work"), {"DST_WORK_DIR_SIZE": "50Gi"})
    assert (limits.total, limits.member) == (12.5 * 1024**3, 6.25 * 1024**3)
    assert parse_quantity("500M") == 500_000_000 and parse_quantity("1.5Gi") == 1.5 * 1024**3
    assert parse_quantity("lots") is None
    with pytest.raises(InvalidInput, match="DST_WORK_DIR_SIZE"):
        ArchiveLimits.for_work_dir(Path("/tmp"), {"DST_WORK_DIR_SIZE": "lots"})
    assert ArchiveLimits.for_work_dir(Path("/tmp/does/not/exist"), {}).work_dir_bytes > 0


def test_https_download_stops_at_the_tarball_limit(tmp_path: Path, monkeypatch) -> None:
    from deepspeech_trainer import init_checkpoint

    served = io.BytesIO(b"\0" * (3 * MiB))
    monkeypatch.setattr(init_checkpoint.urllib.request, "urlopen", lambda url, timeout: served)
    with pytest.raises(
        InvalidInput,
        match=r"https://example.com/c.tar.gz: the tarball is at least 3.0 MiB, more than the 2.0 MiB",
    ):
        init_checkpoint._download_https(
            "https://example.com/c.tar.gz", tmp_path / "c.tar.gz", ArchiveLimits(8 * MiB)
        )
    assert (tmp_path / "c.tar.gz").stat().st_size <= 2 * MiB
