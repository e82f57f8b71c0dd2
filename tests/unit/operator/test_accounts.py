"""spec.serviceAccountName: only accounts opted in for trainers, never the operator's own (issue 14 item 2)."""

from __future__ import annotations

import base64
import json

import pytest
from deepspeech_operator import api
from deepspeech_operator.accounts import account_of_token, opt_in_refusal, own_account_refusal
from deepspeech_operator.config import OperatorConfig
from deepspeech_operator.reconcile import CreateJob, decide

from .factories import NOW, cr, defaulted_spec


def token(claims: object) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def cond(status, ctype):
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_own_account_is_read_from_the_token_subject():
    assert account_of_token(token({"sub": "system:serviceaccount:ops:deepspeech-operator"})) == (
        "ops/deepspeech-operator"
    )
    assert account_of_token(token({"sub": "system:node:n1"})) is None
    assert account_of_token(token(["not", "claims"])) is None
    assert account_of_token("not-a-jwt") is None
    assert account_of_token("a.%%%.c") is None


def test_refusals_name_the_field_and_the_way_out():
    assert opt_in_refusal("speech", None, ()) == "" and opt_in_refusal("speech", "irsa", {"irsa"}) == ""
    message = opt_in_refusal("speech", "admin", {"irsa"})
    assert message.startswith("spec.serviceAccountName 'admin': ServiceAccount speech/admin")
    assert api.TRAINER_ACCOUNT_SELECTOR in message
    assert own_account_refusal("ops", "deepspeech-operator", "ops/deepspeech-operator").startswith(
        "spec.serviceAccountName 'deepspeech-operator' is the operator's own ServiceAccount"
    )
    assert own_account_refusal("speech", "deepspeech-operator", "ops/deepspeech-operator") == ""
    assert own_account_refusal("ops", "deepspeech-operator", "") == ""


def test_an_account_not_opted_in_makes_the_run_wait_without_any_object():
    d = decide(cr(defaulted_spec(serviceAccountName="admin")), [], [], OperatorConfig(), NOW, {"irsa"})
    assert d.actions == []
    assert d.status["phase"] == api.PHASE_PENDING
    ready = cond(d.status, "Ready")
    assert ready["reason"] == "ServiceAccountNotAllowed" and "speech/admin" in ready["message"]
    assert cond(d.status, "Reconciling")["status"] == "True"  # waits: an admin may still opt it in
    assert [(e.type, e.reason) for e in d.events if e.reason == "ServiceAccountNotAllowed"] == [
        ("Warning", "ServiceAccountNotAllowed")
    ]


def test_an_opted_in_account_runs_the_trainer():
    d = decide(cr(defaulted_spec(serviceAccountName="irsa")), [], [], OperatorConfig(), NOW, {"irsa"})
    assert [type(a) for a in d.actions] == [CreateJob]
    job = next(a.job for a in d.actions if isinstance(a, CreateJob))
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "irsa"


@pytest.mark.parametrize("opted_in", [(), ("deepspeech-operator",)])
def test_the_operators_own_account_is_refused_even_when_labelled(opted_in):
    config = OperatorConfig(own_service_account="speech/deepspeech-operator")
    body = cr(defaulted_spec(serviceAccountName="deepspeech-operator"))
    d = decide(body, [], [], config, NOW, opted_in)
    assert d.actions == [] and d.status["phase"] == api.PHASE_FAILED
    stalled = cond(d.status, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "operator's own ServiceAccount" in stalled["message"]


def test_without_service_account_name_the_crs_own_account_is_created():
    d = decide(cr(), [], [], OperatorConfig(), NOW)
    start = next(a for a in d.actions if isinstance(a, CreateJob))
    assert [o["kind"] for o in start.trainer_objects] == ["ServiceAccount", "Role", "RoleBinding"]
