"""The operator's fallbacks for absent spec fields are the CRD's own defaults."""

from __future__ import annotations

import pytest
from deepspeech_operator import defaults


@pytest.mark.parametrize(
    ("path", "value"),
    [("resources.gpus", 1), ("training.epochs", 75), ("storage.region", "us-east-1"), ("preflight", True)],
)
def test_an_absent_field_reads_as_its_crd_default(path, value):
    assert defaults.field({}, path) == value
    assert defaults.field({"resources": None, "training": {}}, path) == value


def test_a_given_field_wins_even_when_falsy():
    assert defaults.gpus({"resources": {"gpus": 0}}) == 0
    assert defaults.field({"preflight": False}, "preflight") is False


def test_a_field_without_a_crd_default_is_a_programming_error():
    with pytest.raises(KeyError):
        defaults.field({}, "training.cudnn")
