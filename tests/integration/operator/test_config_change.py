"""An operator configuration change does not reach runs already started: a running run is neither failed
(leaving its Job and GPU behind) nor resumed with another image than the one it started with."""

from __future__ import annotations

import pytest

from .conftest import base_spec

pytestmark = pytest.mark.cluster

OLD_DEFAULT = "deepspeech-operator/trainer:0.9.3"
CUSTOM = "deepspeech-operator/trainer:custom"


def _image(env, job: str) -> str:
    return env.batch.read_namespaced_job(job, env.ns).spec.template.spec.containers[0].image


def test_running_runs_keep_their_image_and_verdict_across_a_config_change(env):
    env.hold_pods()
    env.apply("dflt", base_spec(preflight=False))
    env.apply("custom", base_spec(preflight=False, deepspeech={"version": "0.9.3", "image": CUSTOM}))
    for name in ("dflt", "custom"):
        env.wait(f"{name} running", lambda n=name: env.running_pod(f"{n}-g1-train"))
        env.wait_phase(name, "Running")
    assert env.status("dflt")["run"]["image"] == OLD_DEFAULT

    # New default repository; the allowed prefixes follow it, so the custom image is no longer allowed.
    env.op.stop()
    seen = len(env.op.text())
    env.op.args = ["--image-repository", "other/trainer"]
    env.op.start()
    env.wait("both CRs resumed", lambda: env.op.text()[seen:].count("Resuming is processed") >= 2)
    custom = env.status("custom")
    assert custom["phase"] == "Running", custom.get("conditions")
    assert env.running_pod("custom-g1-train"), "the run's pod keeps running"

    env.patch_spec("dflt", {"suspend": True})
    env.wait_phase("dflt", "Suspended", timeout=90)
    env.patch_spec("dflt", {"suspend": False})
    env.wait("resumed pod", lambda: env.running_pod("dflt-g1-train-s1"))
    assert _image(env, "dflt-g1-train-s1") == OLD_DEFAULT
