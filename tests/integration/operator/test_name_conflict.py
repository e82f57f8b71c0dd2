"""A same-named object the operator does not own stalls the run visibly (Stalled, naming the object)
instead of being retried in silence; the run proceeds once the object is gone."""

from __future__ import annotations

import json

import pytest

from tests.unit.operator.test_status_kstatus import kstatus

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def _foreign_job(env, name: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": env.ns},
        "spec": {
            "suspend": True,  # no pods: it only holds the name
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            },
        },
    }
    env.kubectl("apply", "-f", "-", input=json.dumps(job))


def test_a_foreign_job_with_the_runs_name_stalls_it_visibly(env):
    env.hold_pods()
    _foreign_job(env, "nc-g1-train")
    env.apply("nc", base_spec(preflight=False))
    stalled = env.wait(
        "Stalled with the conflict",
        lambda: (c := env.condition("nc", "Stalled")).get("status") == "True" and c,
    )
    print("Stalled:", stalled["reason"], "-", stalled["message"])
    assert stalled["reason"] == "NameConflict"
    assert (
        f"Job {env.ns}/nc-g1-train exists and is not controlled by this DeepSpeechTraining"
        in (stalled["message"])
    )
    assert env.condition("nc", "Ready")["reason"] == "NameConflict"
    assert kstatus(env.get("nc")) == "Failed"
    env.kubectl("-n", env.ns, "delete", "job", "nc-g1-train", "--wait=true")
    env.wait("running after the conflict", lambda: env.running_pod("nc-g1-train"), timeout=90)
    env.wait("no longer stalled", lambda: env.condition("nc", "Stalled").get("status") == "False", timeout=30)
