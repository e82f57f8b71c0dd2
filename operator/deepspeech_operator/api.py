"""Names of the DeepSpeechTraining API and of the metadata the operator puts on objects.

Everything here is public: the Helm chart, the docs and the tests refer to these strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GROUP = "training.deepspeech.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DeepSpeechTraining"
PLURAL = "deepspeechtrainings"
SINGULAR = "deepspeechtraining"
SHORT_NAME = "dst"
CATEGORY = "deepspeech"
CRD_NAME = f"{PLURAL}.{GROUP}"

# Training engines and their releases: Mozilla DeepSpeech (the first two speak the 0.6 flag dialect) and
# Coqui STT, its maintained successor (same checkpoint lineage, own flag dialect).
ENGINE_DEEPSPEECH = "deepspeech"
ENGINE_COQUI = "coqui-stt"
ENGINES = (ENGINE_DEEPSPEECH, ENGINE_COQUI)
DEEPSPEECH_VERSIONS = ("0.6.0", "0.6.1", "0.7.4", "0.8.2", "0.9.3")
COQUI_VERSIONS = ("1.4.0",)
ENGINE_VERSIONS = {ENGINE_DEEPSPEECH: DEEPSPEECH_VERSIONS, ENGINE_COQUI: COQUI_VERSIONS}
DEFAULT_VERSIONS = {ENGINE_DEEPSPEECH: "0.9.3", ENGINE_COQUI: "1.4.0"}
DEFAULT_DEEPSPEECH_VERSION = DEFAULT_VERSIONS[ENGINE_DEEPSPEECH]
PRE_07_VERSIONS = ("0.6.0", "0.6.1")


def release_of(spec: Mapping[str, Any]) -> tuple[str, str]:
    """(engine, version) of a spec; the version defaults per engine, which a CRD default cannot do."""
    section = spec.get("deepspeech") or {}
    engine = section.get("engine") or ENGINE_DEEPSPEECH
    return engine, section.get("version") or DEFAULT_VERSIONS.get(engine, DEFAULT_DEEPSPEECH_VERSION)


def release_name(engine: str, version: str) -> str:
    """Key of a release in image tags and --images: `0.9.3` for DeepSpeech, `coqui-stt-1.4.0` for Coqui STT."""
    return version if engine == ENGINE_DEEPSPEECH else f"{engine}-{version}"


RELEASE_NAMES = tuple(release_name(e, v) for e, versions in ENGINE_VERSIONS.items() for v in versions)

OPERATOR_NAME = "deepspeech-operator"
APP_NAME = "deepspeech-training"

# Standard labels (on Jobs and their pod templates).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
MANAGED_BY_SELECTOR = f"{LABEL_MANAGED_BY}={OPERATOR_NAME}"

# Our own labels. Label values are limited to 63 characters, so long CR names are shortened with a
# hash (naming.label_value); the full name is kept in the annotation of the same key.
LABEL_TRAINING = f"{GROUP}/training"
LABEL_RUN = f"{GROUP}/run"
LABEL_STAGE = f"{GROUP}/stage"
ANNOTATION_TRAINING = f"{GROUP}/training"
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
# Written on the CR by the child-watching handlers to wake the CR's reconciler (see handlers.py). Not under
# the kopf prefix below on purpose: kopf hides its own prefix from change detection.
ANNOTATION_OBSERVED = f"observed.{GROUP}/child"
# kopf keeps its handler progress and diff base under this prefix (never kopf.zalando.org).
KOPF_PREFIX = GROUP
KOPF_FINALIZER = f"{GROUP}/finalizer"

# A ServiceAccount carrying this label (value "true") may be named in spec.serviceAccountName of a
# DeepSpeechTraining in its namespace: set by someone who may edit ServiceAccounts there (docs/security.md).
LABEL_TRAINER_ACCOUNT = f"{GROUP}/trainer-account"
TRAINER_ACCOUNT_SELECTOR = f"{LABEL_TRAINER_ACCOUNT}=true"

# Labels/annotations set by other systems that the operator reads or must respect.
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"

GPU_RESOURCE = "nvidia.com/gpu"

STAGE_PREFLIGHT = "preflight"
STAGE_TRAIN = "train"

# status.phase values (docs/contract.md).
PHASE_PENDING = "Pending"
PHASE_VALIDATING = "Validating"
PHASE_QUEUED = "Queued"
PHASE_RUNNING = "Running"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
PHASE_SUSPENDED = "Suspended"
PHASES = (
    PHASE_PENDING,
    PHASE_VALIDATING,
    PHASE_QUEUED,
    PHASE_RUNNING,
    PHASE_SUCCEEDED,
    PHASE_FAILED,
    PHASE_SUSPENDED,
)
TERMINAL_PHASES = (PHASE_SUCCEEDED, PHASE_FAILED)
# history[].phase additionally knows runs replaced by a spec change before they finished.
HISTORY_SUPERSEDED = "Superseded"

CONDITION_TYPES = (
    "Ready",
    "Reconciling",
    "Stalled",
    "Validated",
    "Queued",
    "Running",
    "Suspended",
    "Succeeded",
    "Failed",
)
