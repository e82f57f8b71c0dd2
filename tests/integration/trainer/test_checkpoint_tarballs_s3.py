"""One set of tarball rules: what preflight refuses (streaming the tarball from S3) train refuses too,
and what preflight passes train extracts; limits follow the work dir size (DST_WORK_DIR_SIZE)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from deepspeech_trainer import cli
from deepspeech_trainer import s3 as s3mod
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.init_checkpoint import fetch_init_checkpoint

from tests.integration.trainer.conftest import base_spec, put_good_split, run_preflight_measured, write_spec

pytestmark = pytest.mark.cluster
MiB = 1024 * 1024


def _tar(entries: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in entries:
            data = (
                b'model_checkpoint_path: "train-1"\n'
                if info.name.endswith("/checkpoint")
                else b"\0" * info.size
            )
            if info.isfile():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _file(name: str, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _declared(name: str, size: int) -> bytes:
    head = tarfile.TarInfo("ck/checkpoint")
    head.size = 0
    info = tarfile.TarInfo(name)
    info.size = size
    return gzip.compress(head.tobuf() + info.tobuf() + b"\0" * (64 * 1024))


TARBALLS = {
    "symlink": (
        lambda: _tar([_file("ck/checkpoint"), _symlink("ck/flags.txt", "/etc/passwd")]),
        r"'ck/flags.txt' is a link",
    ),
    "dotdot": (
        lambda: _tar([_file("ck/checkpoint"), _file("ck/../../x.txt", 1)]),
        r"'ck/../../x.txt' would be",
    ),
    "flags-bomb": (
        lambda: _declared("ck/flags.txt", 1024 * MiB),
        r"'ck/flags.txt' is 1.0 GiB, more than 1.0 MiB",
    ),
    "zeros-bomb": (
        lambda: _tar([_file("ck/checkpoint"), _file("ck/train-1.data-00000-of-00001", 40 * MiB)]),
        r"'ck/train-1.data-00000-of-00001' is 40.0 MiB uncompressed, more than 32.0 MiB",
    ),
}


def _preflight(bucket: str, ckpt: str, tmp_path: Path, capsys) -> tuple[int, dict]:
    train = f"s3://{bucket}/ds/train.csv"
    spec = base_spec(bucket, [train], initFrom={"checkpoint": ckpt, "dropSourceLayers": 1})
    path = write_spec(tmp_path / "spec.json", spec)
    code = cli.main(["preflight", "--spec", str(path), "--json", "--work-dir", str(tmp_path / "w")])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("case", sorted(TARBALLS))
def test_preflight_and_train_refuse_the_same_tarball(case, s3, bucket, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    monkeypatch.setenv("DST_WORK_DIR_SIZE", "256Mi")  # 64 MiB in all, 32 MiB per member
    make, pattern = TARBALLS[case]
    put_good_split(s3, bucket, "ds", "train", 2)
    s3.put_object(Bucket=bucket, Key="release/ck.tar.gz", Body=make())
    uri = f"s3://{bucket}/release/ck.tar.gz"

    code, result = _preflight(bucket, uri, tmp_path, capsys)
    assert code == 65, result
    unusable = [p for p in result["problems"] if p["code"] == "checkpoint_unusable"]
    assert unusable and re.search(pattern, unusable[0]["message"]), result["problems"]
    assert "spec.initFrom.checkpoint" in unusable[0]["message"]

    with s3mod.Storage(s3mod.StorageConfig.from_spec({})) as st, pytest.raises(InvalidInput, match=pattern):
        fetch_init_checkpoint(st, uri, tmp_path / "source", tmp_path / "work" / "downloads")
    assert not (tmp_path / "work" / "downloads" / "init-checkpoint").exists()
    assert not (tmp_path / "x.txt").exists()


def test_preflight_streams_a_real_bomb_in_bounded_memory(s3, bucket, tmp_path):
    # 1 GiB of zeros in flags.txt is about 1 MB compressed; it used to be read whole into memory.
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("ck/flags.txt")
        info.size = 1024 * MiB
        gz.write(info.tobuf())
        chunk = b"\0" * MiB
        for _ in range(1024):
            gz.write(chunk)
        gz.write(b"\0" * 1024)
    put_good_split(s3, bucket, "ds", "train", 2)
    s3.put_object(Bucket=bucket, Key="release/bomb.tar.gz", Body=buf.getvalue())
    train = f"s3://{bucket}/ds/train.csv"
    spec = base_spec(bucket, [train], initFrom={"checkpoint": f"s3://{bucket}/release/bomb.tar.gz"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "DST_"))}
    env["DST_TERMINATION_LOG"] = str(tmp_path / "termination")
    code, result, peak_mib = run_preflight_measured(
        write_spec(tmp_path / "spec.json", spec), tmp_path / "w", env
    )
    assert code == 65
    assert any("'ck/flags.txt' is 1.0 GiB" in p["message"] for p in result["problems"]), result["problems"]
    assert peak_mib < 150, f"peak RSS {peak_mib:.0f} MiB"


def test_a_tarball_preflight_passes_is_extracted_by_train(s3, bucket, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    monkeypatch.setenv("DST_WORK_DIR_SIZE", "256Mi")
    body = _tar(
        [
            _file("ck/checkpoint"),
            _file("ck/train-1.index", 10),
            _file("ck/train-1.data-00000-of-00001", 20 * MiB),
        ]
    )
    put_good_split(s3, bucket, "ds", "train", 2)
    s3.put_object(Bucket=bucket, Key="release/ok.tar.gz", Body=body)
    uri = f"s3://{bucket}/release/ok.tar.gz"
    code, result = _preflight(bucket, uri, tmp_path, capsys)
    assert code == 0, result["problems"]
    with s3mod.Storage(s3mod.StorageConfig.from_spec({})) as st:
        got = fetch_init_checkpoint(st, uri, tmp_path / "source", tmp_path / "work" / "downloads")
    assert (got.directory / "train-1.data-00000-of-00001").stat().st_size == 20 * MiB


def test_an_oversized_flags_txt_in_a_checkpoint_folder_is_refused_by_both(
    s3, bucket, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    put_good_split(s3, bucket, "ds", "train", 2)
    for name, body in (
        ("checkpoint", b'model_checkpoint_path: "train-1"\n'),
        ("train-1.index", b"x"),
        ("flags.txt", b"--n_hidden=64\n" * (200 * 1024)),  # 2.7 MiB, read whole by both commands
    ):
        s3.put_object(Bucket=bucket, Key=f"ckpt/{name}", Body=body)
    uri = f"s3://{bucket}/ckpt/"
    code, result = _preflight(bucket, uri, tmp_path, capsys)
    assert code == 65
    pattern = r"flags.txt is 2.7 MiB, more than 1.0 MiB"
    assert any(re.search(pattern, p["message"]) for p in result["problems"]), result["problems"]
    with s3mod.Storage(s3mod.StorageConfig.from_spec({})) as st, pytest.raises(InvalidInput, match=pattern):
        fetch_init_checkpoint(st, uri, tmp_path / "source", tmp_path / "work" / "downloads")
