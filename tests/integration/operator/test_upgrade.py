"""An upgrade that adds a CRD default changes every CR's defaulted spec without a new generation: no run
may start for it, finished runs stay finished, and later suspend toggles do not count as a change."""

from __future__ import annotations

import json

import pytest

from .conftest import CRD, base_spec

pytestmark = pytest.mark.cluster

CRD_NAME = "deepspeechtrainings.training.deepspeech.dev"


def _training_default(env, field: str, value: int | None) -> None:
    """Add (or with None remove) a defaulted field of spec.training in the installed CRD."""
    crd = json.loads(env.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    for version in crd["spec"]["versions"]:
        training = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["training"]
        if value is None:
            training["properties"].pop(field, None)
        else:
            training["properties"][field] = {"type": "integer", "default": value, "description": "test"}
    env.kubectl("replace", "-f", "-", input=json.dumps(crd))


def test_a_new_crd_default_does_not_retrain(env):
    env.apply("up", base_spec(preflight=False))
    finished = env.wait_phase("up", "Succeeded")
    # Finished runs' Jobs may be cleaned up (TTL, by hand): a new run would have to create one again.
    env.kubectl("-n", env.ns, "delete", "job", "up-g1-train", "--wait=true")
    env.wait("Job gone", lambda: env.job_names() == [])
    try:
        _training_default(env, "upgradeKnob", 7)
        env.wait("the new default served", lambda: env.get("up")["spec"]["training"].get("upgradeKnob") == 7)
        env.op.stop()  # the operator upgrade; on start kopf sees the new default as a spec update
        seen = len(env.op.text())
        env.op.start()
        env.wait("the CR reconciled", lambda: "Updating is processed" in env.op.text()[seen:])
        status = env.status("up")
        assert env.job_names() == [], "no Job may be created for a default change"
        assert status["phase"] == "Succeeded" and status["run"]["id"] == "g1"
        assert status["run"]["acceptedSpecHash"] != finished["run"]["specHash"]
        assert status["run"]["specHash"] == finished["run"]["specHash"]
        assert status["model"] == finished["model"] and "history" not in status
        assert env.job_names() == []
        env.patch_spec("up", {"suspend": True})
        generation = env.get("up")["metadata"]["generation"]
        status = env.wait(
            "suspend seen", lambda: (s := env.status("up")).get("observedGeneration") == generation and s
        )
        assert status["run"]["id"] == "g1" and status["phase"] == "Succeeded" and env.job_names() == []
        assert env.events("up").count("RunStarted") == 1
    finally:
        _training_default(env, "upgradeKnob", None)
        env.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        env.wait("the default gone", lambda: "upgradeKnob" not in env.get("up")["spec"]["training"])
