"""The CRD is generated from schema.py; committed files must equal the generator output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from deepspeech_operator import api, crdgen, schema

REPO = Path(__file__).resolve().parents[3]


def test_committed_generated_files_are_current():
    assert crdgen.stale_files(REPO) == [], "run `make generate` and commit the result"


def test_check_mode_detects_stale_and_missing(tmp_path, capsys):
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale" in capsys.readouterr().err
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0
    crd_file = tmp_path / crdgen.CRD_PATH
    crd_file.write_text(crd_file.read_text() + "# edited\n")
    assert crdgen.stale_files(tmp_path) == [crdgen.CRD_PATH]
    assert crdgen.write(tmp_path) == [crdgen.CRD_PATH]
    assert crdgen.write(tmp_path) == []


def test_repo_root_is_the_checkout():
    assert (crdgen.repo_root() / "operator" / "pyproject.toml").is_file()


def test_trainer_copy_is_the_spec_schema():
    spec = json.loads((REPO / crdgen.TRAINER_SCHEMA_PATH).read_text())
    assert spec == schema.spec_schema()


def _walk(node: dict, path: str):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_every_field_has_a_description():
    root = schema.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = [p for p, node in _walk(root, "") if p not in (".metadata",) and not node.get("description")]
    assert missing == []


def test_every_string_and_list_is_bounded_for_cel_cost():
    spec = schema.spec_schema()
    for path, node in _walk(spec, "spec"):
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_crd_identity_and_columns():
    crd = yaml.safe_load((REPO / crdgen.CRD_PATH).read_text())
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "deepspeechtrainings.training.deepspeech.dev"
    assert (names["kind"], names["plural"], names["singular"]) == (api.KIND, api.PLURAL, api.SINGULAR)
    assert names["shortNames"] == ["dst"] and names["categories"] == ["deepspeech"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Epoch"] == ".status.progress.display"
    assert columns["WER"] == ".status.metrics.wer" and columns["Model"] == ".status.model.uri"
    assert columns["Age"] == ".metadata.creationTimestamp"
    assert not any("[-1:]" in p for p in columns.values())


def test_version_enum_and_defaults():
    props = schema.spec_schema()["properties"]
    version = props["deepspeech"]["properties"]["version"]
    # No schema default: it depends on the engine (api.release_of), which a structural default cannot.
    assert (
        version["enum"] == ["0.6.0", "0.6.1", "0.7.4", "0.8.2", "0.9.3", "1.4.0"] and "default" not in version
    )
    assert props["deepspeech"]["properties"]["engine"] == {
        **props["deepspeech"]["properties"]["engine"],
        "enum": ["deepspeech", "coqui-stt"],
        "default": "deepspeech",
    }
    assert props["training"]["properties"]["epochs"]["default"] == 75
    assert props["resources"]["properties"]["gpus"]["maximum"] == 16
    assert props["runPolicy"]["properties"]["backoffLimit"]["default"] == 3


@pytest.mark.parametrize("rule", schema.spec_rules(), ids=lambda r: r["fieldPath"])
def test_cel_rule_messages_name_their_field(rule):
    field = "spec" + rule["fieldPath"]
    assert rule["message"].startswith(field)


def test_status_declares_what_the_trainer_writes():
    status = schema.status_schema()["properties"]
    assert set(status["progress"]["properties"]) >= {
        "epoch",
        "epochs",
        "step",
        "trainLoss",
        "devLoss",
        "updatedAt",
        "runId",
        "display",
    }
    assert set(status["checkpoint"]["properties"]) == {"uri", "epoch"}
    invocation = status["plan"]["properties"]["invocations"]["items"]["properties"]
    assert set(invocation) == {"purpose", "argv"}
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (schema.S3_FILE, "s3://corpus/cv/train.csv", ["s3://corpus", "http://corpus/x", "s3://Bad_Bucket/x"]),
        (schema.S3_PREFIX, "s3://models", ["s3:/models", "gs://models/x"]),
        (
            schema.CHECKPOINT_URI,
            "https://github.com/x/ckpt.tar.gz",
            ["http://github.com/x.tar.gz", "https://github.com/x.zip"],
        ),
        (schema.HTTP_URL, "http://minio.storage.svc:9000", ["minio:9000", "ftp://x"]),
        (schema.FLAG, "--log_level=1", ["-x", "--Bad"]),
    ],
)
def test_uri_patterns(pattern, good, bad):
    assert re.match(pattern, good)
    for value in bad:
        assert not re.match(pattern, value), value
