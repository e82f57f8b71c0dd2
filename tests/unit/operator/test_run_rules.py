"""When a run starts and what names it: new-run rule, ids under stale reads, the run's identity."""

from __future__ import annotations

import copy

from deepspeech_operator import api, naming
from deepspeech_operator.children import Owner, build_job
from deepspeech_operator.observe import adoption_refusal
from deepspeech_operator.reconcile import CreateJob, new_run_wanted

from .factories import CONFIG, UID, cr, defaulted_spec, job
from .test_reconcile import after, created, step


def _succeeded(body):
    d = step(body)
    body = after(body, d)
    body["status"]["phase"] = api.PHASE_SUCCEEDED
    return body


def test_a_new_default_does_not_start_a_new_run():
    """An operator/CRD upgrade that adds a default changes the hash, not the generation: the run stays."""
    body = _succeeded(cr(defaulted_spec(preflight=False)))
    upgraded = copy.deepcopy(body)
    upgraded["spec"]["training"]["newDefault"] = 7
    d = step(upgraded)
    assert d.status["run"]["id"] == "g1" and d.status["phase"] == api.PHASE_SUCCEEDED
    assert not [a for a in d.actions if isinstance(a, CreateJob)] and "history" not in d.status
    assert d.status["run"]["acceptedSpecHash"] == naming.spec_hash(upgraded["spec"])
    assert d.status["run"]["specHash"] == body["status"]["run"]["specHash"]
    # A suspend toggle afterwards moves the generation but not the accepted spec: still the same run.
    toggled = after(upgraded, d)
    toggled["metadata"]["generation"] = 2
    toggled["spec"]["suspend"] = True
    assert step(toggled).status["run"]["id"] == "g1"
    # A real change in a new generation starts one.
    changed = after(upgraded, d)
    changed["metadata"]["generation"] = 2
    changed["spec"]["training"]["epochs"] = 9
    assert step(changed).status["run"]["id"] == "g2"


def test_new_run_rule():
    run = {"id": "g3", "specHash": "a", "generation": 3}
    assert new_run_wanted("a", run, generation=5, observed_generation=4) is False
    assert new_run_wanted("b", run, generation=5, observed_generation=4) is True
    assert new_run_wanted("b", run, generation=4, observed_generation=4) is None
    assert new_run_wanted("b", {**run, "acceptedSpecHash": "b"}, generation=6, observed_generation=4) is False
    assert new_run_wanted("a", {}, generation=1, observed_generation=0) is True


def test_a_body_without_the_last_status_patch_names_the_same_run():
    """kopf proceeds after consistency_timeout with a body lacking its own last patch: the run it starts
    must be the one that patch recorded, even when the generation moved meanwhile (suspend toggles)."""
    g1 = after(cr(defaulted_spec(preflight=False)), step(cr(defaulted_spec(preflight=False))))
    g1["status"]["phase"] = api.PHASE_SUCCEEDED
    edited = copy.deepcopy(g1)
    edited["metadata"]["generation"] = 2
    edited["spec"]["training"]["epochs"] = 9
    first = step(edited)
    stale = copy.deepcopy(edited)  # generation 4 after suspend on/off, status still from before `first`
    stale["metadata"]["generation"] = 4
    second = step(stale)
    assert created(first)["metadata"]["name"] == created(second)["metadata"]["name"] == "en-g2-train"
    assert first.status["run"]["id"] == second.status["run"]["id"] == "g2"


def test_adoption_needs_our_uid_and_the_same_spec():
    body = cr(defaulted_spec(preflight=False))
    desired = build_job(
        Owner.of(body), body["spec"], run_id="g2", stage="train", resumes=0, spec_hash="h2", config=CONFIG
    )
    assert adoption_refusal(job(body, "g2", "train", spec_hash="h2"), desired, UID) is None
    other_spec = adoption_refusal(job(body, "g2", "train", spec_hash="h3"), desired, UID)
    assert other_spec and "Job speech/en-g2-train" in other_spec and "h3" in other_spec
    foreign = adoption_refusal(job(body, "g2", "train", spec_hash="h2", owner_uid="x"), desired, UID)
    assert foreign and "not controlled by this DeepSpeechTraining" in foreign


def test_run_path_is_readable_and_unique_per_cr_incarnation():
    assert naming.run_path("en", UID, "g1") == "en/g1-11111111"
    assert naming.run_path("en", "99999999-0000", "g1") != naming.run_path("en", UID, "g1")
    env = {
        e["name"]: e.get("value")
        for e in created(step(cr()))["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DST_RUN_PATH"] == "en/g1-11111111" and env["DST_UID"] == UID
    assert env["DST_SPEC_HASH"] == naming.spec_hash(cr()["spec"])
