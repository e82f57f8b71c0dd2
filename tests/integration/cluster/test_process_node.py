"""Pods on the process node (or in a namespace marked for it) really run, with the pod spec's environment,
volumes at their mount paths, a service-account token that works against the apiserver, exit codes and
termination messages reported like a kubelet, and SIGTERM on deletion."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.cluster.config import PROCESS_NODES, RUNTIME_LABEL, SIM_RUNTIME, STATE_DIR
from tests.cluster.processes import wait_until

pytestmark = pytest.mark.cluster

PROBE = textwrap.dedent(
    """
    import json, os, ssl, urllib.request
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    namespace = open(f"{sa}/namespace").read()
    request = urllib.request.Request(
        f"https://{host}:{port}/api/v1/namespaces/{namespace}/pods/{os.environ['POD_NAME']}",
        headers={"Authorization": "Bearer " + open(f"{sa}/token").read()},
    )
    try:
        urllib.request.urlopen(request, context=ctx)
        api = "allowed"
    except urllib.error.HTTPError as error:
        api = error.code  # 403 proves the token authenticated as the pod's service account
    report = {
        "secret": os.environ["FROM_SECRET"],
        "config": os.environ["FROM_CONFIG"],
        "expanded": os.environ["EXPANDED"],
        "annotation": open("/etc/podinfo/spec").read(),
        "config_file": open("/etc/config/greeting").read(),
        "cwd": os.getcwd(),
        "api": api,
    }
    open("/dev/termination-log", "w").write(json.dumps(report))
    raise SystemExit(int(os.environ.get("EXIT_CODE", "0")))
    """
)


def pod_job(name: str, script: str, env: list[dict] | None = None, on_process_node: bool = True) -> dict:
    template_spec: dict = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "main",
                "image": "example/python:3.11",
                "command": ["python", "-c", script],
                "workingDir": "/work",
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    *(env or []),
                ],
                "volumeMounts": [
                    {"name": "podinfo", "mountPath": "/etc/podinfo"},
                    {"name": "config", "mountPath": "/etc/config"},
                    {"name": "work", "mountPath": "/work"},
                ],
            }
        ],
        "volumes": [
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "spec", "fieldRef": {"fieldPath": "metadata.annotations['example/spec']"}}
                    ]
                },
            },
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "work", "emptyDir": {}},
        ],
    }
    if on_process_node:
        template_spec["nodeSelector"] = {RUNTIME_LABEL: "process"}
        template_spec["tolerations"] = [
            {"key": RUNTIME_LABEL, "operator": "Exists"},
            {"key": "nvidia.com/gpu", "operator": "Exists"},
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"example/spec": '{"epochs": 3}'}},
                "spec": template_spec,
            },
        },
    }


@pytest.fixture
def settings(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "creds", "--from-literal=key=s3cr3t")
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "configmap",
        "settings",
        "--from-literal=greeting=hello",
        "--from-literal=mode=fast",
    )
    return namespace


ENV = [
    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
    {"name": "FROM_CONFIG", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
    {"name": "EXPANDED", "value": "mode=$(FROM_CONFIG)"},
]


def terminated(cluster, namespace: str, job: str) -> dict:
    pods = json.loads(
        cluster.kubectl("-n", namespace, "get", "pods", "-l", f"job-name={job}", "-o", "json").stdout
    )["items"]
    assert len(pods) == 1
    return pods[0]


def test_process_pod_sees_env_volumes_and_a_working_token(cluster, settings):
    namespace = settings
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(pod_job("probe", PROBE, ENV)))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/probe", "--timeout=90s")
    pod = terminated(cluster, namespace, "probe")
    assert pod["spec"]["nodeName"] in PROCESS_NODES
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 0
    report = json.loads(state["message"])
    assert report == {
        "secret": "s3cr3t",
        "config": "fast",
        "expanded": "mode=fast",
        "annotation": '{"epochs": 3}',
        "config_file": "hello",
        "cwd": "/work",
        "api": 403,  # authenticated as system:serviceaccount:<ns>:default, which may not read pods
    }
    assert not Path("/etc/podinfo/spec").exists(), "pod mounts must stay in the pod's mount namespace"


def test_exit_code_and_message_reach_pod_status(cluster, settings):
    namespace = settings
    job = pod_job("fails", PROBE, [*ENV, {"name": "EXIT_CODE", "value": "65"}])
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(job))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Failed", "job/fails", "--timeout=90s")
    pod = terminated(cluster, namespace, "fails")
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], state["exitCode"], state["reason"]) == ("Failed", 65, "Error")
    assert json.loads(state["message"])["secret"] == "s3cr3t"


def test_missing_secret_keeps_pod_pending_with_reason(cluster, namespace):
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "configmap",
        "settings",
        "--from-literal=greeting=hi",
        "--from-literal=mode=x",
    )
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(pod_job("nosecret", PROBE, ENV)))

    def waiting_reason() -> str | None:
        pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return statuses and statuses[0]["state"].get("waiting", {}).get("message")

    message = wait_until(waiting_reason, 60, "a waiting reason on the pod")
    assert 'secret "creds" not found' in message


SIGTERM_AWARE = textwrap.dedent(
    """
    import os, signal, sys, time
    def stop(signum, frame):
        open("/work/got-sigterm", "w").write("yes")
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    open("/work/started", "w").write("yes")
    while True:
        time.sleep(0.1)
    """
)


def test_deletion_sends_sigterm_to_the_container(cluster, settings):
    namespace = settings
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(pod_job("sleeper", SIGTERM_AWARE)))
    pod = wait_until(
        lambda: _pod_with_volume_file(cluster, namespace, "sleeper", "started"), 60, "the process to start"
    )
    cluster.kubectl(
        "-n", namespace, "delete", "pod", pod["metadata"]["name"], "--grace-period=20", "--wait=false"
    )
    marker = _volume_dir(pod) / "got-sigterm"
    wait_until(marker.exists, 30, "the container to receive SIGTERM")
    wait_until(
        lambda: (
            not json.loads(
                cluster.kubectl(
                    "-n",
                    namespace,
                    "get",
                    "pods",
                    "--field-selector",
                    f"metadata.name={pod['metadata']['name']}",
                    "-o",
                    "json",
                ).stdout
            )["items"]
        ),
        30,
        "the pod to be removed after its process exited",
    )


def test_namespace_annotation_runs_pods_on_any_simulated_node(cluster, settings):
    namespace = settings
    cluster.kubectl("annotate", "namespace", namespace, f"{SIM_RUNTIME}=process")
    job = pod_job("anywhere", PROBE, [*ENV, {"name": "EXIT_CODE", "value": "3"}], on_process_node=False)
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(job))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Failed", "job/anywhere", "--timeout=90s")
    pod = terminated(cluster, namespace, "anywhere")
    assert pod["spec"]["nodeName"] not in PROCESS_NODES
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def _volume_dir(pod: dict) -> Path:
    meta = pod["metadata"]
    return STATE_DIR / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / "volumes" / "work"


def _pod_with_volume_file(cluster, namespace: str, job: str, filename: str) -> dict | None:
    pods = json.loads(
        cluster.kubectl("-n", namespace, "get", "pods", "-l", f"job-name={job}", "-o", "json").stdout
    )["items"]
    return next((p for p in pods if (_volume_dir(p) / filename).exists()), None)


def test_kubectl_logs_reaches_the_agent(cluster, settings):
    namespace = settings
    script = "import sys; print('line one'); print('line two'); sys.exit(0)"
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(pod_job("talker", script)))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/talker", "--timeout=90s")
    assert cluster.kubectl("-n", namespace, "logs", "job/talker").stdout == "line one\nline two\n"
    assert cluster.kubectl("-n", namespace, "logs", "job/talker", "--tail=1").stdout == "line two\n"


def test_namespace_image_env_reaches_the_container(cluster, settings):
    namespace = settings
    cluster.kubectl("annotate", "namespace", namespace, "sim.deepspeech.dev/image-env.KNOB=turned")
    job = pod_job("knob", "import os; open('/dev/termination-log', 'w').write(os.environ['KNOB'])")
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "example/trainer:0.7.4"
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(job))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/knob", "--timeout=90s")
    assert (
        terminated(cluster, namespace, "knob")["status"]["containerStatuses"][0]["state"]["terminated"][
            "message"
        ]
        == "turned"
    )
