"""The whole product on the local cluster: kubectl apply → real operator → preflight pod running the real
`deepspeech-trainer preflight` → GPU pod running the real `train` with the DeepSpeech stand-in (which
trains nothing) → checkpoints and model in the real S3 server → status. Slow-ish: tens of seconds each."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.cluster.config import GPU_NODES
from tests.cluster.controlplane import s3_client
from tests.e2e.conftest import evict_after_epochs
from tests.integration.operator.conftest import Env

pytestmark = pytest.mark.cluster


def spec(corpus: str, s3_env: dict[str, str], namespace: str, **overrides: Any) -> dict[str, Any]:
    """A small 0.9.3 run; outputs under a prefix of its own, so no test resumes another's checkpoints."""
    value: dict[str, Any] = {
        "deepspeech": {"version": "0.9.3"},
        "data": {
            "train": [f"{corpus}/train.csv"],
            "dev": [f"{corpus}/dev.csv"],
            "test": [f"{corpus}/test.csv"],
        },
        "training": {"epochs": 4, "learningRate": 0.0001, "nHidden": 64},
        "output": {"uri": f"s3://e2e/models/{namespace}/{overrides.pop('name', 'run')}/"},
        "resources": {"gpus": 1, "cpu": "1", "memory": "1Gi", "sharedMemory": "64Mi"},
        "storage": {"endpoint": s3_env["AWS_ENDPOINT_URL"], "secretRef": {"name": "s3-credentials"}},
    }
    value.update(overrides)
    return value


def s3_keys(s3_env: dict[str, str], uri: str) -> list[str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = s3_client(s3_env)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def kubectl_get_dst(e2e: Env, name: str) -> str:
    return e2e.kubectl("-n", e2e.ns, "get", "dst", name, "--no-headers").stdout


def test_apply_to_trained_model(e2e: Env, corpus: str, s3_env: dict[str, str]):
    e2e.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=json.dumps(_object(e2e, "tutorial", spec(corpus, s3_env, e2e.ns, name="tutorial"))),
    )
    e2e.wait_phase("tutorial", "Running", timeout=120)
    train_job = e2e.status("tutorial")["run"]["jobName"]
    # Progress from the trainer's live status patches, visible in `kubectl get dst` while it trains.
    row = e2e.wait(
        "an epoch in kubectl get dst",
        lambda: (r := kubectl_get_dst(e2e, "tutorial")) and "/4" in r and r,
        timeout=120,
    )
    assert "Running" in row
    status = e2e.wait_phase("tutorial", "Succeeded", timeout=240)

    assert status["preflight"]["ok"] is True
    assert [p.spec.node_name in GPU_NODES for p in e2e.pods(train_job)] == [True]
    assert status["progress"]["epoch"] == status["progress"]["epochs"] == 4
    assert status["model"]["uri"].startswith(f"s3://e2e/models/{e2e.ns}/tutorial/")
    assert 0.0 <= status["metrics"]["wer"] <= 1.0 and 0.0 <= status["metrics"]["cer"] <= 1.0
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert (conditions["Ready"], conditions["Reconciling"], conditions["Stalled"]) == (
        "True",
        "False",
        "False",
    )
    model_keys = s3_keys(s3_env, status["model"]["uri"])
    assert any(k.endswith("output_graph.pb") for k in model_keys) and any(
        k.endswith("SHA256SUMS") for k in model_keys
    )
    assert s3_keys(s3_env, status["checkpoint"]["uri"]), "checkpoints were synced to S3"
    # The pods' own logs come back through the apiserver from the node agent.
    assert "epoch" in e2e.kubectl("-n", e2e.ns, "logs", f"job/{train_job}").stdout.lower()


def test_bad_data_fails_in_preflight_without_gpu_pod(e2e: Env, corpus: str, s3_env: dict[str, str]):
    s3 = s3_client(s3_env)
    bad = "wav_filename,wav_filesize,transcript\nmissing.wav,1000,hello\n../escape.wav,10,x\n"
    s3.put_object(Bucket="e2e", Key="corpus/bad.csv", Body=bad.encode())
    e2e.apply("baddata", spec(corpus, s3_env, e2e.ns, name="baddata", data={"train": [f"{corpus}/bad.csv"]}))
    status = e2e.wait_phase("baddata", "Failed", timeout=120)
    problems = status["preflight"]["problems"]
    assert {p["line"] for p in problems} >= {2, 3}
    assert all(p["file"].endswith("bad.csv") for p in problems)
    assert not [j for j in e2e.job_names() if j.endswith("-train") or "-train-" in j], "no GPU Job may exist"
    assert next(c for c in status["conditions"] if c["type"] == "Stalled")["status"] == "True"


def test_eviction_mid_training_resumes_from_s3_checkpoint(e2e: Env, corpus: str, s3_env: dict[str, str]):
    e2e.apply(
        "evicted",
        spec(
            corpus,
            s3_env,
            e2e.ns,
            name="evicted",
            training={"epochs": 6, "learningRate": 0.0001, "nHidden": 64},
        ),
    )
    job, first = evict_after_epochs(e2e, "evicted", 2, timeout=180)
    status = e2e.wait_phase("evicted", "Succeeded", timeout=300)
    (second,) = e2e.pods(job)  # the evicted pod is gone; the Job made a replacement
    assert second.metadata.name != first.metadata.name
    assert status["progress"]["epoch"] == 6, "epochs done before the eviction are counted once"
    resumed_log = e2e.kubectl("-n", e2e.ns, "logs", second.metadata.name).stdout
    done_before = re.search(r"plan: \d+ invocation\(s\), (\d) of 6 epoch\(s\) done", resumed_log)
    assert done_before and 2 <= int(done_before.group(1)) < 6, "epochs done before the eviction were restored"
    assert "--load_train last" in resumed_log, "the second pod resumed from the S3 checkpoint"
    assert e2e.batch.read_namespaced_job(job, e2e.ns).status.failed in (None, 0), (
        "an eviction is not a failure"
    )


def test_operator_restart_mid_run_completes_with_one_job(e2e: Env, corpus: str, s3_env: dict[str, str]):
    e2e.apply("restarted", spec(corpus, s3_env, e2e.ns, name="restarted"))
    e2e.wait_phase("restarted", "Running", timeout=120)
    e2e.op.kill()
    e2e.op.start()
    e2e.wait_phase("restarted", "Succeeded", timeout=240)
    train_jobs = [j for j in e2e.job_names() if "-train" in j]
    assert len(train_jobs) == 1, train_jobs


def _object(e2e: Env, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "training.deepspeech.dev/v1alpha1",
        "kind": "DeepSpeechTraining",
        "metadata": {"name": name, "namespace": e2e.ns},
        "spec": value,
    }
