"""Every cross-field (CEL) rule of the CRD has its counterpart in the trainer's validation.

jsonschema cannot run CEL, so the trainer checks these rules itself for specs that never passed an
apiserver (`deepspeech-trainer plan --spec`). A rule added to the CRD without a case here fails
test_every_crd_rule_has_a_case.
"""

from __future__ import annotations

import pytest
from deepspeech_operator import schema
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.spec import validate_spec

from .conftest import make_spec

# CRD rule message -> dotted changes to BASE_SPEC that break only that rule.
VIOLATIONS = {
    "spec.deepspeech.version must be a release of spec.deepspeech.engine": {
        "deepspeech": {"engine": "coqui-stt", "version": "0.9.3"}
    },
    "spec.training.reduceLROnPlateau needs spec.deepspeech.version 0.7.4": {
        "deepspeech.version": "0.6.1",
        "training.reduceLROnPlateau": {},
    },
    "spec.training.augmentations needs spec.deepspeech.version 0.7.4": {
        "deepspeech.version": "0.6.1",
        "training.augmentations": ["volume"],
    },
    "spec.data.scorer needs spec.deepspeech.version 0.7.4": {
        "deepspeech.version": "0.6.1",
        "data.scorer": "s3://corpus/kenlm.scorer",
    },
    "spec.initFrom.dropSourceLayers needs spec.deepspeech.version 0.7.4": {
        "deepspeech.version": "0.6.1",
        "initFrom": {"checkpoint": "s3://corpus/ckpt/", "dropSourceLayers": 1},
    },
    "spec.training.earlyStop needs spec.data.dev": {"training.earlyStop": {}, "data.dev": None},
    "spec.training.reduceLROnPlateau needs spec.data.dev": {
        "training.reduceLROnPlateau": {},
        "data.dev": None,
    },
    "spec.training.batchSize.dev is above 1": {
        "training.batchSize": {"train": 1, "dev": 2, "test": 1},
        "data.dev": None,
    },
    "spec.training.batchSize.test is above 1": {
        "training.batchSize": {"train": 1, "dev": 1, "test": 2},
        "data.test": None,
    },
    "spec.training.cudnn needs spec.resources.gpus": {"training.cudnn": True, "resources.gpus": 0},
    "spec.training.mixedPrecision needs spec.resources.gpus": {
        "training.mixedPrecision": True,
        "training.cudnn": False,
        "resources.gpus": 0,
    },
    "spec.dryRun needs spec.preflight": {"dryRun": True, "preflight": False},
    "spec.output.checkpoints must differ from spec.output.uri": {"output.checkpoints": "s3://models/run/"},
}


def _case(message: str) -> str:
    return next(prefix for prefix in VIOLATIONS if message.startswith(prefix))


def test_every_crd_rule_has_a_case():
    messages = [rule["message"] for rule in schema.spec_rules()]
    missing = [m for m in messages if not any(m.startswith(prefix) for prefix in VIOLATIONS)]
    assert missing == []


@pytest.mark.parametrize("rule", schema.spec_rules(), ids=lambda rule: _case(rule["message"]))
def test_the_trainer_refuses_what_the_rule_refuses_naming_its_field(rule):
    field = "spec" + rule["fieldPath"]
    with pytest.raises(InvalidInput) as err:
        validate_spec(make_spec(**VIOLATIONS[_case(rule["message"])]))
    assert str(err.value).startswith(field), (str(err.value), field)
