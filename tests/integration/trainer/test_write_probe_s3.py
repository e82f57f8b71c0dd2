"""Preflight proves the run can write where it will write, against a real SeaweedFS that refuses: its own
server with two identities, an admin and the trainer's, which may read the data bucket and write only
one of the two output buckets (SeaweedFS per-bucket actions, `-s3.config`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from deepspeech_trainer import cli

from tests.cluster import controlplane, processes
from tests.integration.trainer.conftest import base_spec, put_good_split, write_spec

pytestmark = pytest.mark.cluster
DATA, WRITABLE, READ_ONLY = "corpus", "scratch", "archive"


def identity(name: str, key: str, secret: str, actions: list[str]) -> dict:
    return {"name": name, "credentials": [{"accessKey": key, "secretKey": secret}], "actions": actions}


@pytest.fixture(scope="module")
def refusing_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """Env mappings for `admin` and `trainer` on a private SeaweedFS; the trainer cannot write READ_ONLY."""
    state = tmp_path_factory.mktemp("refusing-s3")
    users = {name: (f"{name}-{secrets.token_hex(4)}", secrets.token_hex(16)) for name in ("admin", "trainer")}
    trainer_actions = [f"{a}:{b}" for b in (DATA, WRITABLE, READ_ONLY) for a in ("Read", "List")]
    config = {
        "identities": [
            identity("admin", *users["admin"], ["Admin", "Read", "List", "Write", "Tagging"]),
            identity("trainer", *users["trainer"], [*trainer_actions, f"Write:{WRITABLE}"]),
        ]
    }
    (state / "identities.json").write_text(json.dumps(config))
    ports = {name: processes.free_port() for name in controlplane.S3_PORTS}
    controlplane.start_s3(state, ports, extra=(f"-s3.config={state / 'identities.json'}",))
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    envs = {
        name: {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "us-east-1",
        }
        for name, (key, secret) in users.items()
    }
    try:
        admin = controlplane.s3_client(envs["admin"])
        processes.wait_until(lambda: admin.list_buckets() is not None, 90, "the refusing SeaweedFS")
        for bucket in (DATA, WRITABLE, READ_ONLY):
            admin.create_bucket(Bucket=bucket)
        put_good_split(admin, DATA, "cv", "train", 3)
        yield envs
    finally:
        processes.stop("s3", state)


def preflight(spec: dict, env: dict[str, str], tmp_path: Path, monkeypatch, capsys) -> tuple[int, dict]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DST_TERMINATION_LOG", str(tmp_path / "termination"))
    path = write_spec(tmp_path / "spec.json", spec)
    code = cli.main(["preflight", "--spec", str(path), "--json", "--work-dir", str(tmp_path / "w")])
    return code, json.loads(capsys.readouterr().out)


def write_problems(result: dict) -> list[dict]:
    return [p for p in result["problems"] if p["code"] == "output_not_writable"]


def spec_writing_to(uri: str, checkpoints: str | None = None) -> dict:
    spec = base_spec(DATA, [f"s3://{DATA}/cv/train.csv"])
    spec["output"] = {"uri": uri, **({"checkpoints": checkpoints} if checkpoints else {})}
    return spec


def test_the_server_really_refuses_the_trainer(refusing_s3):
    trainer = boto3.client(
        "s3",
        endpoint_url=refusing_s3["trainer"]["AWS_ENDPOINT_URL"],
        aws_access_key_id=refusing_s3["trainer"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=refusing_s3["trainer"]["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    with pytest.raises(trainer.exceptions.ClientError, match="AccessDenied"):
        trainer.put_object(Bucket=READ_ONLY, Key="x", Body=b"x")
    trainer.put_object(Bucket=WRITABLE, Key="x", Body=b"x")
    assert trainer.get_object(Bucket=DATA, Key="cv/train.csv")["Body"].read().startswith(b"wav_filename")


def test_an_output_uri_the_trainer_cannot_write_fails_preflight_naming_the_field(
    refusing_s3, tmp_path, monkeypatch, capsys
):
    code, result = preflight(
        spec_writing_to(f"s3://{READ_ONLY}/models/"), refusing_s3["trainer"], tmp_path, monkeypatch, capsys
    )
    assert code == 65 and result["ok"] is False
    (problem,) = write_problems(result)
    assert problem["file"] == f"s3://{READ_ONLY}/models/"
    assert problem["message"].startswith("spec.output.uri: cannot write and delete there")
    assert "denied" in problem["message"].lower(), problem["message"]
    assert len(result["problems"]) == 1, "the default checkpoints folder under it is not reported again"


def test_checkpoints_the_trainer_cannot_write_fail_preflight_naming_that_field(
    refusing_s3, tmp_path, monkeypatch, capsys
):
    spec = spec_writing_to(f"s3://{WRITABLE}/models/", f"s3://{READ_ONLY}/checkpoints/")
    code, result = preflight(spec, refusing_s3["trainer"], tmp_path, monkeypatch, capsys)
    assert code == 65
    (problem,) = write_problems(result)
    assert problem["message"].startswith("spec.output.checkpoints: cannot write and delete there")


def test_writable_outputs_pass_and_leave_no_probe_behind(refusing_s3, tmp_path, monkeypatch, capsys):
    spec = spec_writing_to(f"s3://{WRITABLE}/models/", f"s3://{WRITABLE}/checkpoints/")
    code, result = preflight(spec, refusing_s3["trainer"], tmp_path, monkeypatch, capsys)
    assert code == 0, result["problems"]
    admin = controlplane.s3_client(refusing_s3["admin"])
    left = admin.list_objects_v2(Bucket=WRITABLE, Prefix="models/").get("KeyCount", 0)
    left += admin.list_objects_v2(Bucket=WRITABLE, Prefix="checkpoints/").get("KeyCount", 0)
    assert left == 0
