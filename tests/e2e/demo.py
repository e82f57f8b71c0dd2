"""`make demo`: the product on this machine, end to end, training a real tiny model.

Brings up the local cluster and S3, speaks a small dataset with espeak-ng, turns it into DeepSpeech CSVs in
S3 with `deepspeech-trainer prepare`, starts the operator, applies manifests/examples/demo.yaml and follows
the run in `kubectl get dst -w`: preflight, real training with the engine `make engines` built (TensorFlow 1
on the CPU), test, export, smoke test. DEMO_ENGINE picks it (coqui-stt-1.4.0, deepspeech-0.9.3,
deepspeech-0.6.0); by default DeepSpeech 0.9.3 where its source is available, else Coqui STT 1.4.0.
`python -m tests.e2e.demo down` (make demo-down) stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests import engines
from tests.cluster import controlplane, processes
from tests.cluster.config import REPO, SIM_RUNTIME, STATE_DIR, engine_image_env
from tests.e2e.dataset import prepare_to_s3, speak_pairs

NAMESPACE = "deepspeech-demo"
BUCKET = "demo"
EXAMPLE = REPO / "manifests" / "examples" / "demo.yaml"
CRD = REPO / "manifests" / "crd" / "training.deepspeech.dev_deepspeechtrainings.yaml"
BIN = REPO / ".venv" / "bin"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def kubectl(info: controlplane.ClusterInfo, *args: str, input: str | None = None) -> str:
    env = {
        **os.environ,
        "KUBECONFIG": str(info.kubeconfig),
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    result = subprocess.run(
        [str(BIN / "kubectl"), *args], env=env, input=input, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def upload_dataset(info: controlplane.ClusterInfo) -> None:
    env = info.s3_env
    s3 = controlplane.s3_client(env)
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    with tempfile.TemporaryDirectory() as folder:
        source = speak_pairs(Path(folder))
        print(f"    {len(list(source.rglob('*.wav')))} sentences spoken by espeak-ng")
        output = prepare_to_s3(source, f"s3://{BUCKET}/data", env, BIN / "deepspeech-trainer")
    print("    " + "\n    ".join(line for line in output.splitlines() if line.strip())[:2000])


def start_operator(info: controlplane.ClusterInfo) -> None:
    processes.stop("operator", info.state_dir)
    processes.start(
        "operator",
        [
            sys.executable, "-m", "deepspeech_operator", "--namespaces", NAMESPACE,
            "--metrics-port", str(processes.free_port()), "--liveness-port", str(processes.free_port()),
        ],
        info.state_dir,
        env={"KUBECONFIG": str(info.kubeconfig)},
    )  # fmt: skip


def demo_engine() -> engines.Engine:
    wanted = os.environ.get("DEMO_ENGINE")
    for name in [wanted] if wanted else ["deepspeech-0.9.3", "coqui-stt-1.4.0"]:
        if (found := engines.find(name)) is not None:
            return found
    raise SystemExit(f"demo: {engines.skip_reason(wanted or 'coqui-stt-1.4.0')}")


def demo_object(info: controlplane.ClusterInfo, engine: engines.Engine) -> dict[str, Any]:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["namespace"] = NAMESPACE
    body["spec"]["storage"]["endpoint"] = info.s3_env["AWS_ENDPOINT_URL"]
    body["spec"]["deepspeech"] = {"engine": engine.engine, "version": engine.version}
    # No GPU here and CPU-only TensorFlow: the cuDNN LSTM (the default when gpus > 0) cannot run.
    body["spec"]["training"]["cudnn"] = False
    return body


def wait_for_end(info: controlplane.ClusterInfo, timeout: float = 600) -> dict[str, Any]:
    """Follow the run in `kubectl get dst -w` until it ends."""
    env = {**os.environ, "KUBECONFIG": str(info.kubeconfig)}
    watch = subprocess.Popen(
        [str(BIN / "kubectl"), "-n", NAMESPACE, "get", "dst", "demo", "-w"], env=env, text=True
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            obj = json.loads(kubectl(info, "-n", NAMESPACE, "get", "dst", "demo", "-o", "json"))
            status = obj.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                return status
            time.sleep(1)
    finally:
        watch.terminate()
        watch.wait()
    raise SystemExit(
        f"the demo run did not finish in {timeout:.0f}s; see {STATE_DIR / 'logs' / 'operator.log'}"
    )


def show(info: controlplane.ClusterInfo, status: dict[str, Any], engine: engines.Engine) -> None:
    print(kubectl(info, "-n", NAMESPACE, "get", "dst", "demo"))
    preflight = status.get("preflight") or {}
    say(
        f"Preflight: ok={preflight.get('ok')} rows={preflight.get('rows')} problems={preflight.get('problemCount', 0)}"
    )
    for problem in preflight.get("problems") or []:
        print(f"    {problem['file']}:{problem['line']}: {problem['code']}: {problem['message']}")
    metrics = status.get("metrics") or {}
    model = status.get("model") or {}
    smoke = model.get("smokeTest") or {}
    say("Results")
    print(f"    WER {metrics.get('wer')}, CER {metrics.get('cer')}, test loss {metrics.get('loss')}")
    print(f"    model: {model.get('uri')} ({', '.join(model.get('files') or [])})")
    if smoke.get("ok"):
        print(
            f"    smoke test: {smoke['model']} heard {smoke['transcript']!r} in {smoke['file']} ({smoke['seconds']} s)"
        )
    else:
        print(f"    smoke test did not pass: {smoke.get('message')}")
    say("What this was")
    product = "Coqui STT" if engine.engine == "coqui-stt" else "DeepSpeech"
    epochs = (status.get("progress") or {}).get("epochs")
    print(
        f"    Real training: {product} {engine.version} trained a tiny model (nHidden 64) for {epochs} epochs on\n"
        "    espeak-ng speech, with TensorFlow 1 on this machine's CPU, in a trainer pod that ran as a local\n"
        "    process; checkpoints and the model went to the local S3 server. A GPU cluster runs the same object\n"
        "    on a GPU node: install the operator with Helm (charts/deepspeech-operator), build the trainer image\n"
        "    (docs/images.md), and raise nHidden (2048) and epochs.\n"
        f"    Explore: export KUBECONFIG={info.kubeconfig}; kubectl -n {NAMESPACE} describe dst demo\n"
        "    Clean up: make demo-down"
    )


def up() -> int:
    say("Starting the local control plane and S3 (first run builds Kubernetes from Go modules)")
    info = controlplane.up()
    say("Installing the DeepSpeechTraining CRD")
    kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kubectl(info, "wait", "--for=condition=Established", "crd/deepspeechtrainings.training.deepspeech.dev")
    say("Generating a small speech dataset and uploading it with `deepspeech-trainer prepare`")
    upload_dataset(info)
    say(f"Namespace {NAMESPACE} (pods there run as local processes) and the S3 credentials Secret")
    engine = demo_engine()
    print(f"    trainer pods run {engine.name} from {engine.python.parent.parent}")
    annotations = {SIM_RUNTIME: "process", **engine_image_env(engine.trainer_env())}
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "annotations": annotations},
    }
    kubectl(info, "apply", "-f", "-", input=json.dumps(namespace))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-credentials", "namespace": NAMESPACE},
        "stringData": {k: info.s3_env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
    }
    kubectl(info, "apply", "-f", "-", input=json.dumps(secret))
    say("Starting the operator")
    start_operator(info)
    say(f"Applying {EXAMPLE.relative_to(REPO)} with {engine.name}; following it with kubectl get dst -w")
    kubectl(info, "delete", "dst", "demo", "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    kubectl(info, "apply", "--server-side", "-f", "-", input=json.dumps(demo_object(info, engine)))
    status = wait_for_end(info)
    show(info, status, engine)
    return 0 if status.get("phase") == "Succeeded" else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.demo", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    if parser.parse_args().command == "down":
        controlplane.down()
        print("demo: cluster, S3 and operator stopped; state removed")
        return 0
    return up()


if __name__ == "__main__":
    sys.exit(main())
