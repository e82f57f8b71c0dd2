"""The trainer's RoleBinding follows spec.serviceAccountName: otherwise the new account's status patches
are Forbidden."""

from __future__ import annotations

import pytest
from deepspeech_operator import api
from kubernetes import client

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def _subjects(env, name: str) -> list[str]:
    binding = client.RbacAuthorizationV1Api(env.cluster.api_client()).read_namespaced_role_binding(
        name, env.ns
    )
    return [s.name for s in binding.subjects or []]


def test_a_changed_service_account_reaches_the_trainer_binding(env):
    env.hold_pods()
    for account in ("first", "second"):
        env.kubectl("-n", env.ns, "create", "serviceaccount", account)
        # Only accounts opted in for trainers may be named (accounts.py).
        env.kubectl("-n", env.ns, "label", "serviceaccount", account, api.TRAINER_ACCOUNT_SELECTOR)
    env.apply("sa", base_spec(preflight=False, serviceAccountName="first"))
    env.wait("first run running", lambda: env.running_pod("sa-g1-train"))
    assert _subjects(env, "sa-trainer") == ["first"]
    env.patch_spec("sa", {"serviceAccountName": "second"})
    generation = env.get("sa")["metadata"]["generation"]
    pod = env.wait("second run running", lambda: env.running_pod(f"sa-g{generation}-train"), timeout=90)
    assert pod.spec.service_account_name == "second"
    env.wait("binding follows", lambda: _subjects(env, "sa-trainer") == ["second"], timeout=10)
    can = env.kubectl(
        "auth", "can-i", "patch", "deepspeechtrainings.training.deepspeech.dev/sa", "--subresource=status",
        "-n", env.ns, f"--as=system:serviceaccount:{env.ns}:second", check=False,
    )  # fmt: skip
    assert can.stdout.strip() == "yes"
