"""spec.serviceAccountName on the real control plane (issue 14 item 2): a user who may only create
DeepSpeechTrainings cannot borrow a ServiceAccount nobody opted in, nor the operator's own."""

from __future__ import annotations

import pytest

from .conftest import Env, OperatorProcess, base_spec

pytestmark = pytest.mark.cluster

OPT_IN = "training.deepspeech.dev/trainer-account=true"


@pytest.fixture
def env_with_own_account(k8s, crd, namespace, tmp_path):
    """The operator, told that <namespace>/deepspeech-operator is its own account (in a cluster it reads
    that from its token)."""
    op = OperatorProcess(
        k8s.kubeconfig,
        namespace,
        tmp_path / "operator.log",
        extra_args=("--own-service-account", f"{namespace}/deepspeech-operator"),
    )
    op.start()
    try:
        yield Env(k8s, namespace, op)
    finally:
        op.stop()


def ready(env: Env, name: str) -> dict:
    return env.condition(name, "Ready")


def test_only_opted_in_accounts_and_never_the_operators_own(env_with_own_account):
    env = env_with_own_account
    env.hold_pods()
    env.kubectl("create", "serviceaccount", "powerful", "-n", env.ns)
    env.kubectl("create", "serviceaccount", "deepspeech-operator", "-n", env.ns)
    env.kubectl("label", "serviceaccount", "deepspeech-operator", "-n", env.ns, OPT_IN)

    env.apply("borrow", base_spec(serviceAccountName="powerful"))
    env.apply("own", base_spec(serviceAccountName="deepspeech-operator"))
    waiting = env.wait(
        "borrow refused",
        lambda: (c := ready(env, "borrow")).get("reason") == "ServiceAccountNotAllowed" and c,
    )
    assert f"ServiceAccount {env.ns}/powerful does not exist or is not opted in" in waiting["message"]
    assert env.status("borrow")["phase"] == "Pending"
    failed = env.wait_phase("own", "Failed")
    stalled = next(c for c in failed["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "InvalidSpec" and "operator's own ServiceAccount" in stalled["message"]
    assert env.job_names() == [], "no Job may run as a refused account"
    assert "ServiceAccountNotAllowed" in env.events("borrow")

    # A namespace admin opts the account in: the waiting run goes on by itself, as that account.
    env.kubectl("label", "serviceaccount", "powerful", "-n", env.ns, OPT_IN)
    env.wait_phase("borrow", "Validating")
    (job,) = env.jobs()
    assert job.metadata.name == "borrow-g1-preflight"
    assert job.spec.template.spec.service_account_name == "powerful"
    assert env.status("own")["phase"] == "Failed"
