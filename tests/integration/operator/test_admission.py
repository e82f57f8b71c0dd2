"""Invalid DeepSpeechTrainings are rejected by the apiserver (schema + CEL), naming the field."""

from __future__ import annotations

import copy
import json

import pytest

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def spec_with(path: str, value, base=None):
    spec = copy.deepcopy(base or base_spec())
    node = spec
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return spec


_DELETE = object()
OLD = {"deepspeech": {"version": "0.6.1"}}

INVALID = [
    ("deepspeech.version", "1.0.0", "spec.deepspeech.version"),
    ("data.train", [], "spec.data.train"),
    ("data.train", ["http://corpus/train.csv"], "spec.data.train[0]"),
    ("data.train", [f"s3://b/{i}.csv" for i in range(17)], "spec.data.train"),
    ("data.train", ["s3://corpus/a.csv", "s3://corpus/a.csv"], "spec.data.train[1]"),
    ("data.dev", ["s3://x"], "spec.data.dev[0]"),
    ("data", _DELETE, "spec.data"),
    ("output", _DELETE, "spec.output"),
    ("output.uri", "gs://models/", "spec.output.uri"),
    ("initFrom.checkpoint", "http://example.com/ckpt.tar.gz", "spec.initFrom.checkpoint"),
    ("initFrom.dropSourceLayers", 6, "spec.initFrom.dropSourceLayers"),
    ("initFrom", {"dropSourceLayers": 2}, "spec.initFrom.checkpoint"),
    ("training.epochs", 0, "spec.training.epochs"),
    ("training.learningRate", 0, "spec.training.learningRate"),
    ("training.dropoutRate", 1.5, "spec.training.dropoutRate"),
    ("training.batchSize", {"train": 0}, "spec.training.batchSize.train"),
    ("training.extraArgs", ["-x"], "spec.training.extraArgs[0]"),
    ("resources.gpus", 17, "spec.resources.gpus"),
    ("resources.memory", "lots", "spec.resources.memory"),
    ("resources.workDirSize", "500m", "spec.resources.workDirSize"),
    ("storage.addressingStyle", "weird", "spec.storage.addressingStyle"),
    ("storage.endpoint", "minio:9000", "spec.storage.endpoint"),
    ("runPolicy.backoffLimit", -1, "spec.runPolicy.backoffLimit"),
    ("runPolicy.activeDeadlineSeconds", 0, "spec.runPolicy.activeDeadlineSeconds"),
    ("queueName", "Bad Queue", "spec.queueName"),
    ("dryRun", True, "spec.dryRun"),  # with preflight false, below
    # CEL on every URI: empty, '.' and '..' segments (AWS keeps '/tmp/...' keys verbatim).
    ("data.train", ["s3://corpus//tmp/evil/train.csv"], "spec.data.train[0]"),
    ("data.dev", ["s3://corpus/a/../dev.csv"], "spec.data.dev[0]"),
    ("data.alphabet", "s3://corpus/./alphabet.txt", "spec.data.alphabet"),
    ("output.uri", "s3://models/runs//", "spec.output.uri"),
    ("output.checkpoints", "s3://models/ck/../", "spec.output.checkpoints"),
    ("initFrom.checkpoint", "https://example.com/a/../ckpt.tar.gz", "spec.initFrom.checkpoint"),
]

CEL = [
    ({**OLD, "training": {"reduceLROnPlateau": {"epochs": 3}}}, "spec.training.reduceLROnPlateau"),
    ({**OLD, "training": {"augmentations": ["frequency_mask[p=0.8]"]}}, "spec.training.augmentations"),
    (
        {**OLD, "initFrom": {"checkpoint": "s3://m/c/", "dropSourceLayers": 1}},
        "spec.initFrom.dropSourceLayers",
    ),
    (
        {"training": {"earlyStop": {"epochs": 3}}, "data": {"train": ["s3://corpus/t.csv"]}},
        "spec.training.earlyStop",
    ),
    ({"training": {"batchSize": {"test": 8}}}, "spec.training.batchSize.test"),
    ({"training": {"cudnn": True}, "resources": {"gpus": 0}}, "spec.training.cudnn"),
    ({"training": {"mixedPrecision": True}, "resources": {"gpus": 0}}, "spec.training.mixedPrecision"),
    ({"output": {"uri": "s3://m/x/", "checkpoints": "s3://m/x/"}}, "spec.output.checkpoints"),
]


def _cases():
    for path, value, field in INVALID:
        spec = spec_with(path, value)
        if path == "dryRun":
            spec["preflight"] = False
        yield pytest.param(spec, field, id=f"{field}={json.dumps(value, default=str)[:30]}")
    for overrides, field in CEL:
        spec = base_spec()
        for key, value in overrides.items():
            spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
        if "data" in overrides:
            spec["data"] = overrides["data"]
        if field == "spec.data.scorer":
            pass
        yield pytest.param(spec, field, id=f"cel:{field}")
    scorer = base_spec(deepspeech={"version": "0.6.0"})
    scorer["data"]["scorer"] = "s3://m/kenlm.scorer"
    yield pytest.param(scorer, "spec.data.scorer", id="cel:spec.data.scorer")


CASES = list(_cases())


def test_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.fixture
def admit(k8s, crd, namespace):
    def run(spec):
        body = {
            "apiVersion": "training.deepspeech.dev/v1alpha1",
            "kind": "DeepSpeechTraining",
            "metadata": {"name": "x", "namespace": namespace},
            "spec": spec,
        }
        return k8s.kubectl("apply", "--dry-run=server", "-f", "-", check=False, input=json.dumps(body))

    return run


def test_valid_spec_is_admitted_with_defaults(admit):
    result = admit(base_spec())
    assert result.returncode == 0, result.stderr


def test_folder_prefixes_and_dotted_names_are_admitted(admit):
    spec = spec_with("data.train", ["s3://corpus/.hidden/a..b/train.csv"])
    spec["output"] = {"uri": "s3://models/runs/", "checkpoints": "s3://models"}
    spec["initFrom"] = {"checkpoint": "s3://models/ckpt/"}
    spec["resources"]["workDirSize"] = "100Gi"
    result = admit(spec)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("spec", "field"), CASES)
def test_invalid_spec_rejected_naming_the_field(admit, spec, field):
    result = admit(spec)
    assert result.returncode != 0, f"accepted: {json.dumps(spec)}"
    assert field in result.stderr, result.stderr
