"""The latency floor: a trivial kopf operator that creates one Job per DeepSpeechTraining and nothing else.

Run by bench/operator_latency.py as `python -m kopf run bench/floor_operator.py --standalone
--namespace=<ns>`: same kopf, same Python, same cluster, same synchronous kubernetes client as the real
operator, but no indexes, no status, no RBAC objects, no decision logic. What it takes from CR creation to
Job creation is what any kopf operator pays.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes import client, config

GROUP, VERSION, PLURAL = "training.deepspeech.dev", "v1alpha1", "deepspeechtrainings"
_BATCH: list[client.BatchV1Api] = []


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.scanning.disabled = True
    settings.posting.enabled = False
    config.load_kube_config()
    _BATCH.append(client.BatchV1Api())


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_job(name: str, namespace: str, uid: str, **_: Any) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{name}-floor",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "DeepSpeechTraining",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "noop", "image": "floor/noop:1"}],
                }
            },
        },
    }
    _BATCH[0].create_namespaced_job(namespace, job)
