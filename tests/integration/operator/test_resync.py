"""The level-triggered resync: a CR whose wake-up writes failed still reaches its final phase.

The operator wakes a CR's reconciler by annotating it when its children change (handlers._poke). Here an
admission policy refuses those annotation writes while the training pod finishes, so every poke after
the Job's completion fails; once the policy is lifted, no child event is left to retry it. Only the
periodic resync (set to 2 s here) can bring the CR from Running to Succeeded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.cluster.config import STATE_DIR

from .conftest import GROUP, PLURAL, VERSION, base_spec

pytestmark = pytest.mark.cluster

AUDIT_LOG = STATE_DIR / "logs" / "audit.log"
OBSERVED = "observed.training.deepspeech.dev/child"


@pytest.fixture
def operator_args(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # By environment, not flag: an operator without the resync would refuse an unknown flag.
    monkeypatch.setenv("DST_OPERATOR_RESYNC_SECONDS", "2")
    return []


def _annotation(side: str) -> str:
    return (
        f"(has({side}.metadata.annotations) && '{OBSERVED}' in {side}.metadata.annotations"
        f" ? {side}.metadata.annotations['{OBSERVED}'] : '')"
    )


def _deny_pokes(env: Any) -> str:
    name = f"deny-pokes-{env.ns}"[:63]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": [PLURAL],
                    }
                ]
            },
            "validations": [
                {
                    "expression": f"{_annotation('object')} == {_annotation('oldObject')}",
                    "message": "test policy: the observed-child annotation may not change",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": env.ns}}},
        },
    }
    for obj in (policy, binding):
        env.kubectl("apply", "-f", "-", input=json.dumps(obj))
    return name


def _poke_refused(env: Any, name: str) -> bool:
    """A server-side dry run of a poke: admission runs, nothing is stored."""
    body = {"metadata": {"annotations": {OBSERVED: "probe"}}}
    try:
        env.custom.patch_namespaced_custom_object(GROUP, VERSION, env.ns, PLURAL, name, body, dry_run="All")
    except ApiException as exc:
        return exc.status in (400, 403, 422)
    return False


def _refused_pokes(env: Any, name: str, offset: int) -> list[dict[str, Any]]:
    out = []
    with AUDIT_LOG.open("rb") as f:
        f.seek(offset if AUDIT_LOG.stat().st_size >= offset else 0)
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ref = event.get("objectRef") or {}
            if (
                ref.get("namespace") == env.ns
                and ref.get("resource") == PLURAL
                and ref.get("name") == name
                and not ref.get("subresource")
                and event.get("userAgent", "").startswith("OpenAPI-Generator/")
                and (event.get("responseStatus") or {}).get("code", 200) >= 400
            ):
                out.append(event)
    return out


def test_a_cr_whose_pokes_failed_still_succeeds(env):
    if not AUDIT_LOG.exists():
        pytest.skip("an external cluster: no audit log of this harness")
    env.hold_pods()
    env.apply("rs", base_spec(preflight=False))
    pod = env.wait("training pod running", lambda: env.running_pod("rs-g1-train"))
    env.wait_phase("rs", "Running")
    policy = _deny_pokes(env)
    try:
        env.wait("the policy refuses pokes", lambda: _poke_refused(env, "rs"))
        offset = AUDIT_LOG.stat().st_size
        env.finish_pod(pod.metadata.name, 0)
        env.wait(
            "Job complete",
            lambda: any(
                c.type == "Complete" and c.status == "True"
                for c in env.batch.read_namespaced_job("rs-g1-train", env.ns).status.conditions or []
            ),
        )
        refused = env.wait("a refused poke", lambda: _refused_pokes(env, "rs", offset))
        print(f"refused pokes while the policy was in place: {len(refused)}")
        assert env.status("rs")["phase"] == "Running", "the CR missed its Job's completion"
    finally:
        env.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy)
    status = env.wait_phase("rs", "Succeeded", timeout=60)
    woken = [line for line in env.op.text().splitlines() if "resync:" in line]
    print("phase after the resync:", status["phase"], "|", woken[0] if woken else "(no resync line)")
    assert woken and f"{env.ns}/rs had not seen" in woken[0]
