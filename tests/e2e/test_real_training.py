"""The product with a real training program: kubectl apply → operator → preflight pod → a trainer pod that
runs real Coqui STT (TensorFlow 1 on CPU, the engine `make engines` built) → eviction mid-training → the
replacement pod resumes from the real TF checkpoint in S3 → Succeeded with WER/CER from the real test pass,
the model in S3, a smoke-test transcript, and `kubectl get dst` showing it all."""

from __future__ import annotations

import re

import pytest

from tests import engines
from tests.cluster.config import engine_image_env
from tests.e2e.conftest import evict_after_epochs, prepare_process_namespace
from tests.e2e.test_training_flow import s3_keys, spec
from tests.integration.operator.conftest import Env, OperatorProcess, running_operator

pytestmark = [pytest.mark.cluster, pytest.mark.real_training]
ENGINE = "coqui-stt-1.4.0"


@pytest.fixture
def real_e2e(cluster, namespace: str, s3_env: dict[str, str], crd: None, tmp_path):
    engine = engines.require(ENGINE)
    prepare_process_namespace(cluster, namespace, s3_env, engine_image_env(engine.trainer_env()))
    op = OperatorProcess(cluster.kubeconfig, namespace, tmp_path / "operator.log")
    with running_operator(op, cluster, namespace) as started:
        yield started


def test_real_training_survives_eviction_and_reports_results(real_e2e: Env, corpus: str, s3_env):
    e2e = real_e2e
    epochs = 60
    value = spec(
        corpus,
        s3_env,
        e2e.ns,
        name="coqui",
        deepspeech={"engine": "coqui-stt", "version": "1.4.0"},
        training={"epochs": epochs, "learningRate": 0.001, "nHidden": 32, "cudnn": False},
    )
    value["data"]["alphabet"] = f"{corpus}/alphabet.txt"
    e2e.apply("coqui", value)
    job, first = evict_after_epochs(e2e, "coqui", 2, timeout=300)
    status = e2e.wait_phase("coqui", "Succeeded", timeout=420)

    (second,) = e2e.pods(job)
    assert second.metadata.name != first.metadata.name
    resumed = e2e.kubectl("-n", e2e.ns, "logs", second.metadata.name).stdout
    done = re.search(rf"plan: \d+ invocation\(s\), (\d+) of {epochs} epoch\(s\) done", resumed)
    assert done and 2 <= int(done.group(1)) < epochs, "the new pod restored the epochs done before"
    assert "coqui_stt_training.train" in resumed and "--load_train last" in resumed
    assert status["progress"]["epoch"] == epochs
    assert 0.0 <= status["metrics"]["wer"] <= 1.0 and 0.0 <= status["metrics"]["cer"] <= 1.0
    model = status["model"]
    assert model["smokeTest"]["ok"] is True and isinstance(model["smokeTest"]["transcript"], str)
    assert any(k.endswith("output_graph.tflite") for k in s3_keys(s3_env, model["uri"]))
    row = e2e.kubectl("-n", e2e.ns, "get", "dst", "coqui", "--no-headers").stdout
    assert "Succeeded" in row and f"{epochs}/{epochs}" in row and model["uri"] in row
