"""A DeepSpeechTraining deleted and created again under its name is a new training: its g1 neither
restores the old g1's checkpoint nor publishes over (or as) the old model."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.test_training_flow import _object, s3_keys, spec
from tests.integration.operator.conftest import Env

pytestmark = pytest.mark.cluster


def _train_log(e2e: Env, name: str) -> str:
    job = e2e.status(name)["run"]["jobName"]
    return e2e.kubectl("-n", e2e.ns, "logs", f"job/{job}").stdout


def test_recreated_cr_starts_fresh_and_keeps_the_old_model(e2e: Env, corpus: str, s3_env: dict[str, str]):
    body = json.dumps(_object(e2e, "again", spec(corpus, s3_env, e2e.ns, name="again")))
    e2e.kubectl("apply", "--server-side", "-f", "-", input=body)
    first = e2e.wait_phase("again", "Succeeded", timeout=240)
    first_uid = e2e.get("again")["metadata"]["uid"]
    first_sums = s3_keys(s3_env, first["model"]["uri"])

    e2e.kubectl("-n", e2e.ns, "delete", "dst", "again", "--wait=true")
    e2e.kubectl("apply", "--server-side", "-f", "-", input=body)
    e2e.wait("the new CR", lambda: e2e.get("again")["metadata"]["uid"] != first_uid)
    second = e2e.wait_phase("again", "Succeeded", timeout=240)
    second_uid = e2e.get("again")["metadata"]["uid"]
    log = _train_log(e2e, "again")

    print(f"first:  uid {first_uid} run {first['run']['id']} model {first['model']['uri']}")
    print(f"second: uid {second_uid} run {second['run']['id']} model {second['model']['uri']}")
    print("second train log:", re.search(r"plan: .*", log).group(0))
    assert second["run"]["id"] == first["run"]["id"] == "g1"
    assert re.search(r"plan: \d+ invocation\(s\), 0 of 4 epoch\(s\) done", log), "nothing was restored"
    assert "restored checkpoint" not in log
    assert second["model"]["uri"] == f"s3://e2e/models/{e2e.ns}/again/again/g1-{second_uid[:8]}/"
    assert second["checkpoint"]["uri"] != first["checkpoint"]["uri"]
    assert s3_keys(s3_env, first["model"]["uri"]) == first_sums, "the old run's model is untouched"
