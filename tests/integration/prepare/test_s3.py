"""Upload to the local S3 server (SeaweedFS), a second upload that sends nothing, and an s3:// SOURCE."""

from __future__ import annotations

import io
import secrets
import shutil
from pathlib import Path

import boto3
import pytest
import yaml
from deepspeech_trainer.prepare.pipeline import Options, run

pytestmark = pytest.mark.cluster


@pytest.fixture
def bucket(s3_env, monkeypatch) -> tuple[str, object]:
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        region_name=s3_env.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
    )
    name = f"prep-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    return name, client


def _keys(client, bucket: str, prefix: str) -> dict[str, int]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"][len(prefix) :]: o["Size"] for p in pages for o in p.get("Contents", [])}


def test_upload_then_unchanged_second_upload(speech, tmp_path, bucket, s3_env):
    name, client = bucket
    src = tmp_path / "src"
    src.mkdir()
    for i, (clip, text) in enumerate(speech):
        shutil.copy(clip, src / f"c{i}.wav")
        (src / f"c{i}.txt").write_text(text, encoding="utf-8")
    dest = f"s3://{name}/corpora/tiny-en/"
    opts = Options(str(src), dest, work_dir=tmp_path / "work", progress_bar=False)
    out = io.StringIO()
    first = run(opts, out=out, err=io.StringIO())
    files = {"train.csv", "dev.csv", "test.csv", "alphabet.txt", "summary.json", "dropped.csv"}
    remote = _keys(client, name, "corpora/tiny-en/")
    assert files <= set(remote)
    wavs = {k for k in remote if k.startswith("wav/")}
    assert len(wavs) == len(speech) and first.uploaded == len(speech) + len(files)
    for row in first.rows:  # sizes in the CSVs are the sizes in the bucket
        assert remote[row.clip.wav] == row.clip.size

    doc = yaml.safe_load(first.snippet)
    assert doc["apiVersion"] == "training.deepspeech.dev/v1alpha1"
    assert doc["metadata"]["name"] == "tiny-en"
    assert doc["spec"]["data"]["train"] == [f"{dest}train.csv"]
    assert doc["spec"]["data"]["alphabet"] == f"{dest}alphabet.txt"
    assert doc["spec"]["storage"]["endpoint"] == s3_env["AWS_ENDPOINT_URL"]
    assert doc["spec"]["output"]["uri"] == f"s3://{name}/models/tiny-en/"
    assert "kind: DeepSpeechTraining" in out.getvalue()

    second = run(opts, out=io.StringIO(), err=io.StringIO())
    assert (second.converted, second.uploaded) == (0, 0)
    assert second.upload_skipped == first.uploaded


def test_s3_source_gives_the_same_result_as_local(speech, tmp_path, bucket):
    name, client = bucket
    src = tmp_path / "src"
    (src / "clips").mkdir(parents=True)
    lines = ["path\tsentence\tclient_id"]
    for i, (clip, text) in enumerate(speech):
        shutil.copy(clip, src / "clips" / f"c{i}.wav")
        lines.append(f"c{i}.wav\t{text}\tspk{i % 3}")
    (src / "validated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for path in src.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), name, f"raw/{path.relative_to(src).as_posix()}")

    local = run(Options(str(src), str(tmp_path / "local")), out=io.StringIO(), err=io.StringIO())
    remote = run(Options(f"s3://{name}/raw", str(tmp_path / "remote")), out=io.StringIO(), err=io.StringIO())
    for split in ("train.csv", "dev.csv", "test.csv", "alphabet.txt"):
        assert (tmp_path / "remote" / split).read_bytes() == (tmp_path / "local" / split).read_bytes()
    assert remote.summary["splits"] == local.summary["splits"]
    # Downloaded sources are removed once converted: only the outputs stay.
    leftovers = [p for p in Path(tmp_path / "remote" / ".prepare-source").rglob("*") if p.is_file()]
    assert leftovers == []
