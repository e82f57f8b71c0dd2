"""`make demo`: the product on this machine, end to end, as a dry run.

Brings up the local cluster and S3, speaks a small dataset with espeak-ng, turns it into DeepSpeech CSVs in
S3 with `deepspeech-trainer prepare`, starts the operator, applies manifests/examples/demo.yaml and shows the
run reaching its end: the preflight results and the exact DeepSpeech command lines a GPU cluster would run.
`python -m tests.e2e.demo down` (make demo-down) stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import controlplane, processes
from tests.cluster.config import REPO, SIM_RUNTIME, STATE_DIR
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


def demo_object(info: controlplane.ClusterInfo) -> dict[str, Any]:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["namespace"] = NAMESPACE
    body["spec"]["storage"]["endpoint"] = info.s3_env["AWS_ENDPOINT_URL"]
    return body


def wait_for_end(info: controlplane.ClusterInfo, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last_phase = None
    while time.monotonic() < deadline:
        obj = json.loads(kubectl(info, "-n", NAMESPACE, "get", "dst", "demo", "-o", "json"))
        status = obj.get("status") or {}
        if status.get("phase") != last_phase:
            last_phase = status.get("phase")
            print(f"    phase: {last_phase}")
        if last_phase in ("Succeeded", "Failed"):
            return status
        time.sleep(0.5)
    raise SystemExit(
        f"the demo run did not finish in {timeout:.0f}s; see {STATE_DIR / 'logs' / 'operator.log'}"
    )


def show(info: controlplane.ClusterInfo, status: dict[str, Any]) -> None:
    print(kubectl(info, "-n", NAMESPACE, "get", "dst", "demo"))
    preflight = status.get("preflight") or {}
    say(
        f"Preflight: ok={preflight.get('ok')} rows={preflight.get('rows')} problems={preflight.get('problemCount', 0)}"
    )
    for problem in preflight.get("problems") or []:
        print(f"    {problem['file']}:{problem['line']}: {problem['code']}: {problem['message']}")
    plan = status.get("plan") or {}
    say(f"The DeepSpeech {plan.get('version', '?')} command lines a GPU cluster would run:")
    for invocation in plan.get("invocations") or []:
        print(f"\n  [{invocation['purpose']}]\n  {shlex.join(invocation['argv'])}")
    say("What this was")
    print(
        "    A dry run: preflight really ran (a trainer process read the CSVs and WAV headers from the local S3\n"
        "    server). No training happened: TensorFlow 1.15, which DeepSpeech needs, cannot run on this machine\n"
        "    (Python 3.11). On a GPU cluster, install the operator with Helm (charts/deepspeech-operator, see its\n"
        "    README), build the trainer image (docs/images.md) and apply the same object without dryRun.\n"
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
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "annotations": {SIM_RUNTIME: "process"}},
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
    say(f"Applying {EXAMPLE.relative_to(REPO)} (dryRun: true)")
    kubectl(info, "delete", "dst", "demo", "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    kubectl(info, "apply", "--server-side", "-f", "-", input=json.dumps(demo_object(info)))
    status = wait_for_end(info)
    show(info, status)
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
