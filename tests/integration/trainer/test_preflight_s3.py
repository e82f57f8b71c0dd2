"""preflight against the real S3 server with a generated dataset full of known defects."""

from __future__ import annotations

import json

import pytest
from deepspeech_trainer import cli

from tests.integration.trainer.conftest import (
    base_spec,
    put_good_split,
    run_preflight_measured,
    wav_bytes,
    write_spec,
)

pytestmark = pytest.mark.cluster


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_preflight_finds_every_defect_with_file_and_line(s3, bucket, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    put = lambda key, data: s3.put_object(Bucket=bucket, Key=f"bad/{key}", Body=data)  # noqa: E731
    put("clips/ok.wav", wav_bytes(1.0))
    put("clips/ok2.wav", wav_bytes(1.0, freq=300))
    put("clips/rate.wav", wav_bytes(1.0, rate=8000))
    put("clips/stereo.wav", wav_bytes(1.0, channels=2))
    put("clips/8bit.wav", wav_bytes(1.0, width=1))
    put("clips/trunc.wav", wav_bytes(1.0)[:30])
    put("clips/short.wav", wav_bytes(0.1))
    put("clips/unknown.wav", wav_bytes(1.0, freq=500))
    put("clips/empty.wav", wav_bytes(1.0, freq=600))
    put("secret.wav", wav_bytes(1.0))
    csv = (
        "\ufeffwav_filename,wav_filesize,transcript\r\n"  # BOM + CRLF
        'clips/ok.wav,1,"hello, world"\r\n'  # 2: fine, quoted comma
        "clips/rate.wav,1,rate\r\n"  # 3
        "clips/stereo.wav,1,stereo\r\n"  # 4
        "clips/8bit.wav,1,eight\r\n"  # 5
        "clips/trunc.wav,1,truncated\r\n"  # 6
        "clips/short.wav,1,this transcript is far too long for a tenth of a second\r\n"  # 7
        "clips/unknown.wav,1,ünknown ✓\r\n"  # 8 (alphabet given below)
        "clips/empty.wav,1,\r\n"  # 9
        "../secret.wav,1,escape\r\n"  # 10
        "clips/missing.wav,1,missing\r\n"  # 11
        "clips/ok2.wav,1,fine\r\n"  # 12
    )
    put("train.csv", csv.encode())
    put("alphabet.txt", ("# a-z\n \n" + "\n".join("abcdefghijklmnopqrstuvwxyz',") + "\n").encode())
    spec = base_spec(bucket, [f"s3://{bucket}/bad/train.csv"])
    spec["data"]["alphabet"] = f"s3://{bucket}/bad/alphabet.txt"
    path = write_spec(tmp_path / "spec.json", spec)

    code, out = run_cli(capsys, "preflight", "--spec", str(path), "--json", "--work-dir", str(tmp_path / "w"))
    assert code == 65
    result = json.loads(out)
    found = {(p["line"], p["code"]) for p in result["problems"]}
    expected = {
        (3, "wav_rate"),
        (4, "wav_channels"),
        (5, "wav_width"),
        (6, "wav_truncated"),
        (7, "audio_too_short"),
        (8, "transcript_alphabet"),
        (9, "transcript_empty"),
        (10, "path_escape"),
        (11, "file_missing"),
    }
    assert expected <= found, sorted(found)
    assert not {line for line, _ in found} & {2, 12}, "good rows must not be flagged"
    assert all(p["file"] == f"s3://{bucket}/bad/train.csv" for p in result["problems"])
    assert result["rows"] == 11 and result["ok"] is False
    termination = json.loads((tmp_path / "termination").read_text())
    assert termination["kind"] == "preflight" and termination["problemCount"] == result["problemCount"]
    assert termination["alphabetSize"] == 29


def test_preflight_ok_derives_and_publishes_alphabet(s3, bucket, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    train = put_good_split(s3, bucket, "ds", "train", 6)
    dev = put_good_split(s3, bucket, "ds", "dev", 2, seed=50)
    spec = base_spec(bucket, [train], [dev], dryRun=True)
    path = write_spec(tmp_path / "spec.json", spec)
    code, out = run_cli(capsys, "preflight", "--spec", str(path), "--json", "--work-dir", str(tmp_path / "w"))
    result = json.loads(out)
    assert code == 0, result["problems"]
    assert result["ok"] and result["rows"] == 8
    assert result["alphabet"][0] == " " and "'" in result["alphabet"] and "h" in result["alphabet"]
    assert [inv["purpose"] for inv in result["plan"]["invocations"]] == ["train", "export"]
    written = (tmp_path / "w" / "data" / "alphabet.txt").read_text()
    assert written.endswith("\n") and "\nh\n" in written
    assert json.loads((tmp_path / "termination").read_text())["ok"] is True


def test_preflight_missing_csv_and_bad_extra_arg_are_both_reported(s3, bucket, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    spec = base_spec(bucket, [f"s3://{bucket}/nope/train.csv"])
    spec["training"]["extraArgs"] = ["--no_such_flag=1"]
    path = write_spec(tmp_path / "spec.json", spec)
    code, out = run_cli(capsys, "preflight", "--spec", str(path), "--json", "--work-dir", str(tmp_path / "w"))
    assert code == 65
    by_code = {p["code"]: p for p in json.loads(out)["problems"]}
    assert "no_such_flag" in by_code["spec_invalid"]["message"]
    assert "does not exist" in by_code["csv_missing"]["message"]
    assert "spec.data.train[0]" in by_code["csv_missing"]["message"]


def test_preflight_unreachable_storage_is_retryable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    spec = base_spec("somebucket", ["s3://somebucket/ds/train.csv"])
    spec["storage"] = {"endpoint": "http://127.0.0.1:9"}
    path = write_spec(tmp_path / "spec.json", spec)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _ = run_cli(capsys, "preflight", "--spec", str(path), "--work-dir", str(tmp_path / "w"))
    assert code == 75
    assert json.loads((tmp_path / "termination").read_text())["ok"] is False


def test_preflight_key_with_dot_dot_is_invalid_not_retryable(s3, bucket, tmp_path, capsys, monkeypatch):
    # S3 answers such keys with InvalidRequest, which used to be mapped to a retryable 75.
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    train = put_good_split(s3, bucket, "ds", "train", 2)
    spec = base_spec(bucket, [f"s3://{bucket}/ds/x/../train.csv", train])
    spec["data"]["alphabet"] = f"s3://{bucket}//alphabet.txt"
    path = write_spec(tmp_path / "spec.json", spec)
    code, out = run_cli(capsys, "preflight", "--spec", str(path), "--json", "--work-dir", str(tmp_path / "w"))
    assert code == 65, out
    messages = [p["message"] for p in json.loads(out)["problems"]]
    assert any("spec.data.train[0]" in m and "'..' path segment" in m for m in messages), messages
    assert any("spec.data.alphabet" in m and "empty path segment" in m for m in messages), messages


def _subprocess_env(tmp_path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "DST_"))}
    return env | {"DST_TERMINATION_LOG": str(tmp_path / "termination")}


def test_preflight_memory_stays_flat_on_a_16_mb_csv_of_junk_lines(s3, bucket, tmp_path):
    # Every junk line is a problem: they used to be kept as objects (2.2 GB peak for 16 MB).
    lines = ["wav_filename,wav_filesize,transcript"]
    lines += [f"junk {i} with no commas at all" for i in range(550_000)]
    body = ("\n".join(lines) + "\n").encode()
    assert len(body) > 16_000_000
    s3.put_object(Bucket=bucket, Key="junk/train.csv", Body=body)
    path = write_spec(tmp_path / "spec.json", base_spec(bucket, [f"s3://{bucket}/junk/train.csv"]))
    code, result, peak_mib = run_preflight_measured(path, tmp_path / "w", _subprocess_env(tmp_path))
    assert code == 65 and result["problemCount"] == 550_001  # + split_too_small
    assert len(result["problems"]) == 200 and result["problems"][0]["line"] == 2
    assert peak_mib < 250, f"peak RSS {peak_mib:.0f} MiB"
    assert not (tmp_path / "w" / "csv-download" / "train-0.csv").exists()


def test_preflight_memory_stays_flat_on_many_rows_with_missing_audio(s3, bucket, tmp_path):
    lines = ["wav_filename,wav_filesize,transcript"] + [f"a/{i}.wav,1,some words" for i in range(300_000)]
    s3.put_object(Bucket=bucket, Key="many/train.csv", Body=("\n".join(lines) + "\n").encode())
    path = write_spec(tmp_path / "spec.json", base_spec(bucket, [f"s3://{bucket}/many/train.csv"]))
    code, result, peak_mib = run_preflight_measured(path, tmp_path / "w", _subprocess_env(tmp_path))
    assert code == 65 and result["rows"] == 300_000
    assert result["problemCounts"]["file_missing"] == 300_000
    assert peak_mib < 250, f"peak RSS {peak_mib:.0f} MiB"
