"""Hand-built CRs, Jobs and Pods (projections as observe.project_* keeps them) for the unit tests."""

from __future__ import annotations

import copy
from typing import Any

from deepspeech_operator import api, contract, naming
from deepspeech_operator.children import Owner, build_job
from deepspeech_operator.config import OperatorConfig

UID = "11111111-2222-3333-4444-555555555555"
NOW = "2030-01-01T00:00:00Z"
CONFIG = OperatorConfig()


def defaulted_spec(**overrides: Any) -> dict[str, Any]:
    """A spec as the apiserver hands it out after CRD defaulting."""
    spec: dict[str, Any] = {
        "deepspeech": {"version": "0.9.3"},
        "data": {"train": ["s3://corpus/cv/train.csv"], "dev": ["s3://corpus/cv/dev.csv"]},
        "training": {
            "epochs": 3,
            "learningRate": 0.0001,
            "nHidden": 2048,
            "dropoutRate": 0.05,
            "batchSize": {"train": 1, "dev": 1, "test": 1},
            "mixedPrecision": False,
        },
        "output": {"uri": "s3://models/en/", "tflite": False},
        "resources": {"gpus": 1},
        "storage": {"region": "us-east-1", "addressingStyle": "auto"},
        "suspend": False,
        "preflight": True,
        "dryRun": False,
        "runPolicy": {"backoffLimit": 3},
    }
    for key, value in overrides.items():
        spec[key] = value
    return spec


def cr(
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int = 1,
    name: str = "en",
    uid: str = UID,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {
            "name": name,
            "namespace": "speech",
            "uid": uid,
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": spec if spec is not None else defaulted_spec(),
    }
    if status is not None:
        body["status"] = status
    return body


def job(
    body: dict[str, Any],
    run_id: str,
    stage: str,
    state: str = "active",
    resumes: int = 0,
    failed: int = 0,
    reason: str = "",
    deleting: bool = False,
    owner_uid: str | None = None,
    spec_hash: str | None = None,
    suspended: bool = False,
) -> dict[str, Any]:
    """A Job projection in one of the states active/complete/failed."""
    owner = Owner.of(body)
    manifest = build_job(
        owner,
        body["spec"],
        run_id=run_id,
        stage=stage,
        resumes=resumes,
        spec_hash=spec_hash or naming.spec_hash(body["spec"]),
        config=CONFIG,
    )
    meta = copy.deepcopy(manifest["metadata"])
    if owner_uid is not None:
        meta["ownerReferences"][0]["uid"] = owner_uid
    meta["uid"] = f"job-{meta['name']}"
    meta["creationTimestamp"] = "2030-01-01T00:00:00Z"
    meta["deletionTimestamp"] = "2030-01-01T00:00:09Z" if deleting else None
    status: dict[str, Any] = {"failed": failed} if failed else {}
    if state == "complete":
        status["conditions"] = [
            {"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T00:01:00Z"}
        ]
        status["completionTime"] = "2030-01-01T00:01:00Z"
    elif state == "failed":
        status["conditions"] = [
            {
                "type": "Failed",
                "status": "True",
                "reason": reason or "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": "2030-01-01T00:02:00Z",
            }
        ]
    elif suspended:
        status["conditions"] = [
            {"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"}
        ]
    return {"metadata": meta, "spec": {"suspend": suspended}, "status": status}


def pod(
    job_obj: dict[str, Any],
    phase: str = "Running",
    created: str = "2030-01-01T00:00:01Z",
    exit_code: int | None = None,
    reason: str | None = None,
    message: str | None = None,
    disrupted: bool = False,
    unschedulable: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    labels = dict(job_obj["metadata"]["labels"])
    labels.pop(api.LABEL_KUEUE_QUEUE, None)
    labels[api.LABEL_JOB_NAME] = job_obj["metadata"]["name"]
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    if phase == "Running":
        status["startTime"] = created
    if unschedulable:
        status["conditions"].append(
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        )
    if disrupted:
        status["conditions"].append(
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
        )
    if exit_code is not None:
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        }
        if message is not None:
            terminated["message"] = message
        status["containerStatuses"] = [{"name": contract.CONTAINER_NAME, "state": {"terminated": terminated}}]
    return {
        "metadata": {
            "name": name or job_obj["metadata"]["name"] + "-x" + created[-3:-1],
            "labels": labels,
            "creationTimestamp": created,
            "deletionTimestamp": None,
        },
        "spec": {"nodeName": "gpu-node-0"},
        "status": status,
    }
