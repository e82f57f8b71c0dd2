"""Pure builders of the objects a DeepSpeechTraining owns: its Jobs and the trainer's RBAC.

Input is plain data (the CR's metadata and defaulted spec, the run, the operator config); output is the
object as a dict, ready to create. Nothing here talks to the API.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from . import api, contract, defaults, naming
from .config import OperatorConfig

SPEC_VOLUME = "spec"


@dataclasses.dataclass(frozen=True)
class Owner:
    """The DeepSpeechTraining that owns the children."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    def reference(self) -> dict[str, Any]:
        # controller=true makes the Job ours for adoption checks; blockOwnerDeletion makes foreground
        # deletion of the CR wait for it. Garbage collection deletes the children with the CR.
        return {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def base_labels(owner: Owner) -> dict[str, str]:
    return {
        api.LABEL_NAME: api.APP_NAME,
        api.LABEL_MANAGED_BY: api.OPERATOR_NAME,
        api.LABEL_TRAINING: naming.label_value(owner.name),
    }


def run_labels(owner: Owner, run_id: str, stage: str) -> dict[str, str]:
    return {**base_labels(owner), api.LABEL_COMPONENT: stage, api.LABEL_RUN: run_id, api.LABEL_STAGE: stage}


def trainer_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec handed to the trainer: the defaulted spec minus `suspend`, with the release the operator
    chose the image for. Defaults that depend on other fields (training.cudnn, output.checkpoints) are
    the trainer's to derive."""
    out = copy.deepcopy(naming.run_defining_spec(spec))
    engine, version = api.release_of(out)
    out["deepspeech"] = {**out.get("deepspeech", {}), "engine": engine, "version": version}
    return out


def image_of(spec: Mapping[str, Any], config: OperatorConfig) -> str:
    return spec.get("deepspeech", {}).get("image") or config.image_for(
        api.release_name(*api.release_of(spec))
    )


def work_dir_size(spec: Mapping[str, Any], config: OperatorConfig) -> str:
    """sizeLimit of the /work emptyDir, the same for both stages: preflight checks a checkpoint tarball
    against the limits train will derive from it."""
    return str(spec.get("resources", {}).get("workDirSize", config.train_defaults.work_dir_size))


def _env(
    owner: Owner, run_id: str, spec_hash: str, spec: Mapping[str, Any], work_size: str
) -> list[dict[str, Any]]:
    storage = spec.get("storage", {})
    env: list[dict[str, Any]] = [
        {"name": "DST_NAME", "value": owner.name},
        {"name": "DST_NAMESPACE", "value": owner.namespace},
        {"name": "DST_RUN_ID", "value": run_id},
        # The run's identity (docs/contract.md): the trainer records it beside its checkpoints and refuses
        # to restore a checkpoint another CR (or another run) wrote.
        {"name": "DST_UID", "value": owner.uid},
        {"name": "DST_SPEC_HASH", "value": spec_hash},
        {"name": "DST_RUN_PATH", "value": naming.run_path(owner.name, owner.uid, run_id)},
        {"name": "DST_WORK_DIR", "value": contract.WORK_DIR},
        {"name": "DST_WORK_DIR_SIZE", "value": work_size},
        {"name": "HOME", "value": contract.WORK_DIR},  # the root filesystem is read-only
        {"name": "AWS_REGION", "value": defaults.field(spec, "storage.region")},
    ]
    if storage.get("endpoint"):
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage["endpoint"]})
    secret = storage.get("secretRef", {}).get("name")
    if secret:
        # Credentials reach the pod only as secretKeyRef: the operator never reads the Secret.
        for key, optional in (
            ("AWS_ACCESS_KEY_ID", False),
            ("AWS_SECRET_ACCESS_KEY", False),
            ("AWS_SESSION_TOKEN", True),
        ):
            ref: dict[str, Any] = {"name": secret, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def _resources(stage: str, spec: Mapping[str, Any], config: OperatorConfig) -> tuple[dict[str, Any], str]:
    """Container resources (requests = limits, for Kueue quotas and Guaranteed QoS) and the /dev/shm size."""
    if stage == api.STAGE_PREFLIGHT:
        pre = config.preflight_resources
        amounts: dict[str, Any] = {"cpu": pre.cpu, "memory": pre.memory}
        shm = pre.shared_memory
    else:
        res = spec.get("resources", {})
        operator_defaults = config.train_defaults
        amounts = {
            "cpu": str(res.get("cpu", operator_defaults.cpu)),
            "memory": str(res.get("memory", operator_defaults.memory)),
        }
        gpus = defaults.gpus(spec)
        if gpus > 0:
            amounts[api.GPU_RESOURCE] = str(gpus)
        shm = str(res.get("sharedMemory", operator_defaults.shared_memory))
    return {"requests": dict(amounts), "limits": dict(amounts)}, shm


def _scheduling(stage: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Pod scheduling fields. The preflight pod is CPU-only and ignores the GPU-oriented placement."""
    if stage == api.STAGE_PREFLIGHT:
        return {}
    res = spec.get("resources", {})
    out: dict[str, Any] = {}
    tolerations = [dict(t) for t in res.get("tolerations", [])]
    if defaults.gpus(spec) > 0:
        tolerations.insert(0, {"key": api.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        out["tolerations"] = tolerations
    if res.get("nodeSelector"):
        out["nodeSelector"] = dict(res["nodeSelector"])
    if res.get("affinity"):
        out["affinity"] = copy.deepcopy(res["affinity"])
    if res.get("priorityClassName"):
        out["priorityClassName"] = res["priorityClassName"]
    return out


def pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            # Evictions, preemptions and drains are not the trainer's fault: never count them.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            # Invalid spec or data will not get better by retrying.
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": contract.CONTAINER_NAME,
                    "operator": "In",
                    "values": [contract.EXIT_INVALID],
                },
            },
        ]
    }


def build_job(
    owner: Owner,
    spec: Mapping[str, Any],
    *,
    run_id: str,
    stage: str,
    resumes: int,
    spec_hash: str,
    config: OperatorConfig,
    image: str | None = None,
    limits: tuple[int, int | None] | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job of one stage of a run. Write-once: never patched after creation.

    `image`: the image the run started with (status.run.image); resumes and re-created Jobs keep it even
    when the operator's default image changed since. `limits`: (backoffLimit, activeDeadlineSeconds) left
    to the run (reconcile.job_limits); default: the spec's runPolicy, for a run's first Job.
    """
    name = naming.job_name(owner.name, run_id, stage, resumes)
    labels = run_labels(owner, run_id, stage)
    resources, shm = _resources(stage, spec, config)
    work_size = work_dir_size(spec, config)
    uid = config.run_as_user
    container = {
        "name": contract.CONTAINER_NAME,
        "image": image or image_of(spec, config),
        "imagePullPolicy": config.image_pull_policy,
        "command": ["deepspeech-trainer"],
        "args": [stage, "--spec", contract.SPEC_FILE],
        "env": _env(owner, run_id, spec_hash, spec, work_size),
        "resources": resources,
        "volumeMounts": [
            {"name": SPEC_VOLUME, "mountPath": contract.SPEC_MOUNT_DIR, "readOnly": True},
            {"name": "work", "mountPath": contract.WORK_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # The trainer writes its JSON result there; logs are the fallback when it crashed before.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec_json = json.dumps(trainer_spec(spec), sort_keys=True, separators=(",", ":"))
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # required by podFailurePolicy; retries are new pods of the Job
        "serviceAccountName": spec.get("serviceAccountName") or naming.trainer_account_name(owner.name),
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": (
            config.preflight_grace_seconds if stage == api.STAGE_PREFLIGHT else config.train_grace_seconds
        ),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": SPEC_VOLUME,
                "downwardAPI": {
                    "items": [
                        {
                            "path": contract.SPEC_FILE.rsplit("/", 1)[1],
                            "fieldRef": {"fieldPath": f"metadata.annotations['{contract.SPEC_ANNOTATION}']"},
                        }
                    ]
                },
            },
            {"name": "work", "emptyDir": {"sizeLimit": work_size}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
        ],
        **_scheduling(stage, spec),
    }
    job_labels = dict(labels)
    queue = spec.get("queueName")
    if queue and stage == api.STAGE_TRAIN:
        # One Kueue Workload per run: only the GPU Job is queued; the small CPU preflight is not.
        job_labels[api.LABEL_KUEUE_QUEUE] = queue
    run_policy = spec.get("runPolicy", {})
    backoff_limit, deadline = limits or (
        int(run_policy.get("backoffLimit", 3)),
        int(run_policy["activeDeadlineSeconds"]) if run_policy.get("activeDeadlineSeconds") else None,
    )
    job_spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "podReplacementPolicy": "Failed",
        "podFailurePolicy": pod_failure_policy(),
        "completions": 1,
        "parallelism": 1,
        "template": {
            "metadata": {
                "labels": dict(labels),
                "annotations": {contract.SPEC_ANNOTATION: spec_json, api.ANNOTATION_TRAINING: owner.name},
            },
            "spec": pod_spec,
        },
    }
    if queue and stage == api.STAGE_TRAIN:
        # Created suspended, as Kueue expects of a queued Job: no pod may start before admission even when
        # Kueue's webhook is down or not (yet) installed. Kueue unsuspends it on admission and suspends it
        # on preemption; the operator never changes suspend after creation (Jobs are write-once).
        job_spec["suspend"] = True
    if deadline:
        job_spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": job_labels,
            "annotations": {api.ANNOTATION_SPEC_HASH: spec_hash, api.ANNOTATION_TRAINING: owner.name},
            "ownerReferences": [owner.reference()],
        },
        "spec": job_spec,
    }


# The fields of the trainer's objects the operator keeps as it built them (objects of another kind, or
# other fields, are left as they are). A RoleBinding's roleRef cannot change and is always ours by name.
OWNED_FIELDS = {
    "ServiceAccount": ("automountServiceAccountToken",),
    "Role": ("rules",),
    "RoleBinding": ("subjects",),
}


def drift_patch(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing an existing trainer object's owned fields back to `desired`; None if none
    differ (e.g. a RoleBinding whose subject is still the old spec.serviceAccountName)."""
    patch = {
        key: copy.deepcopy(desired[key])
        for key in OWNED_FIELDS.get(str(desired.get("kind")), ())
        if key in desired and existing.get(key) != desired[key]
    }
    return patch or None


def trainer_rbac(owner: Owner, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ServiceAccount (unless spec.serviceAccountName), Role and RoleBinding of the trainer.

    The Role allows get/patch on the status of this one DeepSpeechTraining: the trainer's live progress
    needs nothing else (docs/security.md).
    """
    name = naming.trainer_account_name(owner.name)
    meta = {
        "namespace": owner.namespace,
        "labels": base_labels(owner),
        "ownerReferences": [owner.reference()],
    }
    account = spec.get("serviceAccountName") or name
    objects: list[dict[str, Any]] = []
    if not spec.get("serviceAccountName"):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, **copy.deepcopy(meta)},
                # The token is mounted for the status patches; nothing else uses it.
                "automountServiceAccountToken": True,
            }
        )
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, **copy.deepcopy(meta)},
            "rules": [
                {
                    "apiGroups": [api.GROUP],
                    "resources": [f"{api.PLURAL}/status"],
                    "resourceNames": [owner.name],
                    "verbs": ["get", "patch"],
                }
            ],
        }
    )
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, **copy.deepcopy(meta)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": owner.namespace}],
        }
    )
    return objects
