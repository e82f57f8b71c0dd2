"""The DeepSpeechTraining CRD: the single source of truth for its schema, defaults and validation.

`crdgen` writes the CRD manifest and the trainer's copy of the spec schema from here; the operator reads
nothing else. Every field has a description because `kubectl explain` shows them to users. Strings and
lists carry maxLength/maxItems so the apiserver can bound the cost of the CEL rules.
"""

from __future__ import annotations

from typing import Any

from . import api

Schema = dict[str, Any]

# A bucket name as S3 allows it, then a key. Data files need a key; prefixes may stop at the bucket.
_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
S3_FILE = rf"^s3://{_BUCKET}/\S+$"
S3_PREFIX = rf"^s3://{_BUCKET}(/\S*)?$"
CHECKPOINT_URI = rf"^(s3://{_BUCKET}(/\S*)?|https://[A-Za-z0-9.-]+(:[0-9]+)?/\S+\.tar\.gz)$"
HTTP_URL = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
SIZE = r"^[0-9]+(\.[0-9]+)?(k|M|G|T|Ki|Mi|Gi|Ti)?$"  # bytes: a quantity without milli
IMAGE = r"^[^\s]+$"
FLAG = r"^--[a-z][a-z0-9_]*(=.*)?$"
AUGMENTATION = r"^[a-z_]+(\[[^\]]*\])?$"

MAX_URIS = 16
MAX_URI_LEN = 1024
# Bounds of status strings the operator composes (reconcile.bound_status cuts to them).
MAX_CONDITION_REASON = 128
MAX_CONDITION_MESSAGE = 4096
MAX_FAILURE_REASON = 1024


def _obj(description: str, properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "description": description, "properties": properties, **extra}


def _str(description: str, **extra: Any) -> Schema:
    extra.setdefault("maxLength", 253)
    return {"type": "string", "description": description, **extra}


def _int(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def _num(description: str, **extra: Any) -> Schema:
    return {"type": "number", "description": description, **extra}


def _bool(description: str, **extra: Any) -> Schema:
    return {"type": "boolean", "description": description, **extra}


# A path segment that is empty ('//', a key starting with '/'), '.' or '..', after scheme://host/. A
# trailing '/' (a folder prefix) is fine. AWS keeps such keys verbatim (the trainer's local copy would
# leave its work dir) and answers '..' with InvalidRequest; the trainer refuses them again.
BAD_PATH_SEGMENT = r"^[a-z0-9]+://[^/]*/([^/]*/)*([.][.]?(/|$)|/)"


def _uri(description: str, pattern: str) -> Schema:
    return _str(
        description + " No empty, '.' or '..' path segments.",
        pattern=pattern,
        maxLength=MAX_URI_LEN,
        **{
            "x-kubernetes-validations": [
                {
                    "rule": f"!self.matches(r'{BAD_PATH_SEGMENT}')",
                    "message": "has an empty, '.' or '..' path segment (e.g. '//' or '/../'): write the "
                    "key as a plain relative path",
                }
            ]
        },
    )


def _uris(description: str, *, min_items: int = 0) -> Schema:
    schema: Schema = {
        "type": "array",
        "description": description,
        "maxItems": MAX_URIS,
        "x-kubernetes-list-type": "set",
        "items": _uri("An s3://bucket/key URI of a CSV file.", S3_FILE),
    }
    if min_items:
        schema["minItems"] = min_items
    return schema


def _quantity(description: str) -> Schema:
    return {
        "description": description,
        # The shape controller-gen gives resource.Quantity; the pattern only applies to the string form.
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY,
        "x-kubernetes-int-or-string": True,
    }


def _condition() -> Schema:
    return _obj(
        "A metav1.Condition. Ready, Reconciling and Stalled follow kstatus; Validated, Queued, Running, "
        "Suspended, Succeeded and Failed describe the current run.",
        {
            "type": _str("Condition type, e.g. Ready.", maxLength=64),
            "status": _str("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _str(
                "Stable CamelCase reason, e.g. Running or BackoffLimitExceeded.",
                maxLength=MAX_CONDITION_REASON,
            ),
            "message": _str("Human-readable detail.", maxLength=MAX_CONDITION_MESSAGE),
            "lastTransitionTime": _str("When status last changed.", format="date-time", maxLength=64),
            "observedGeneration": _int("metadata.generation this condition was computed for."),
        },
        required=["type", "status"],
    )


def spec_schema() -> Schema:
    versions = [v for engine_versions in api.ENGINE_VERSIONS.values() for v in engine_versions]
    return _obj(
        "What to train: data, starting point, hyper-parameters, where the model goes and on which nodes. "
        "Changing anything but suspend starts a new run.",
        {
            "deepspeech": _obj(
                "Which training program trains: Mozilla DeepSpeech or Coqui STT, and which release.",
                {
                    "engine": _str(
                        "Training program: deepspeech (Mozilla DeepSpeech 0.6.0-0.9.3) or coqui-stt (Coqui "
                        "STT 1.x, DeepSpeech's maintained successor; same checkpoint format, so it "
                        "fine-tunes DeepSpeech 0.9.3 checkpoints).",
                        enum=list(api.ENGINES),
                        default=api.ENGINE_DEEPSPEECH,
                    ),
                    "version": _str(
                        "Release of the engine; selects the training flag dialect and the default trainer "
                        "image. deepspeech: "
                        + ", ".join(api.DEEPSPEECH_VERSIONS)
                        + f" (default {api.DEFAULT_VERSIONS[api.ENGINE_DEEPSPEECH]}); coqui-stt: "
                        + ", ".join(api.COQUI_VERSIONS)
                        + f" (default {api.DEFAULT_VERSIONS[api.ENGINE_COQUI]}). reduceLROnPlateau, "
                        "dropSourceLayers, augmentations and scorer need DeepSpeech 0.7.4 or newer.",
                        enum=versions,
                    ),
                    "image": _str(
                        "Trainer image override. Must start with one of the operator's allowed image "
                        "prefixes; default: the operator's image for the chosen version.",
                        pattern=IMAGE,
                        maxLength=512,
                    ),
                },
                default={},
            ),
            "data": _obj(
                "Training data: CSV files with columns wav_filename,wav_filesize,transcript.",
                {
                    "train": _uris("Training CSVs (1 to 16 s3:// URIs).", min_items=1),
                    "dev": _uris("Validation CSVs, evaluated after every epoch."),
                    "test": _uris("Test CSVs; their WER/CER end up in status.metrics."),
                    "alphabet": _uri("Alphabet file; derived from all transcripts when absent.", S3_FILE),
                    "scorer": _uri("External scorer package used for the test run (0.7.4+).", S3_FILE),
                },
                required=["train"],
            ),
            "initFrom": _obj(
                "Start from an existing checkpoint (fine-tuning or transfer learning).",
                {
                    "checkpoint": _uri(
                        "Checkpoint directory prefix or .tar.gz on s3://, or an https:// release tarball "
                        "(.tar.gz).",
                        CHECKPOINT_URI,
                    ),
                    "dropSourceLayers": _int(
                        "Number of output layers to re-initialise for transfer learning (0.7.4+).",
                        minimum=0,
                        maximum=5,
                        default=0,
                    ),
                },
                required=["checkpoint"],
            ),
            "training": _obj(
                "Hyper-parameters, as the DeepSpeech.py flags of the same meaning.",
                {
                    "epochs": _int(
                        "Total epochs of the run; epochs done before a preemption count.",
                        minimum=1,
                        maximum=10000,
                        default=75,
                    ),
                    "learningRate": _num(
                        "Learning rate (--learning_rate).",
                        exclusiveMinimum=True,
                        minimum=0,
                        maximum=1,
                        default=0.001,
                    ),
                    "nHidden": _int("LSTM width (--n_hidden).", minimum=1, maximum=8192, default=2048),
                    "batchSize": _obj(
                        "Batch sizes per split.",
                        {
                            "train": _int("--train_batch_size.", minimum=1, maximum=4096, default=1),
                            "dev": _int(
                                "--dev_batch_size; more than 1 needs data.dev.",
                                minimum=1,
                                maximum=4096,
                                default=1,
                            ),
                            "test": _int(
                                "--test_batch_size; more than 1 needs data.test.",
                                minimum=1,
                                maximum=4096,
                                default=1,
                            ),
                        },
                        default={},
                    ),
                    "dropoutRate": _num(
                        "Dropout rate (--dropout_rate), 0 to below 1.",
                        minimum=0,
                        maximum=1,
                        exclusiveMaximum=True,
                        default=0.05,
                    ),
                    "earlyStop": _obj(
                        "Early stopping on the validation loss; present = enabled. Needs data.dev.",
                        {
                            "epochs": _int("--es_epochs.", minimum=1, maximum=1000, default=25),
                            "minDelta": _num("--es_min_delta.", minimum=0, maximum=100, default=0.05),
                        },
                    ),
                    "reduceLROnPlateau": _obj(
                        "Reduce the learning rate when the validation loss plateaus; present = enabled. "
                        "Needs version 0.7.4+ and data.dev.",
                        {
                            "epochs": _int("--plateau_epochs.", minimum=1, maximum=1000, default=10),
                            "reduction": _num(
                                "--plateau_reduction, a factor between 0 and 1.",
                                exclusiveMinimum=True,
                                minimum=0,
                                exclusiveMaximum=True,
                                maximum=1,
                                default=0.1,
                            ),
                        },
                    ),
                    "augmentations": {
                        "type": "array",
                        "description": "Each entry becomes one --augment, e.g. "
                        "'frequency_mask[p=0.8,n=2:4,size=2:4]' (0.7.4+).",
                        "maxItems": 16,
                        "items": _str("One augmentation spec.", pattern=AUGMENTATION, maxLength=256),
                    },
                    "cudnn": _bool(
                        "Use the cuDNN LSTM (--use_cudnn_rnn on 0.6, --train_cudnn on 0.7+). Default: "
                        "true when resources.gpus > 0. Needs a GPU."
                    ),
                    "mixedPrecision": _bool(
                        "Automatic mixed precision (--automatic_mixed_precision). Needs a GPU.",
                        default=False,
                    ),
                    "extraArgs": {
                        "type": "array",
                        "description": "Escape hatch: extra DeepSpeech.py flags as --flag=value; each must "
                        "be a known flag of the chosen version (checked by preflight).",
                        "maxItems": 32,
                        "items": _str("One flag, --name or --name=value.", pattern=FLAG, maxLength=512),
                    },
                },
                default={},
            ),
            "output": _obj(
                "Where results go.",
                {
                    "uri": _uri(
                        "s3:// prefix for exported models; each run writes under <uri>/<cr name>/<run id>-<uid>/.",
                        S3_PREFIX,
                    ),
                    "tflite": _bool("Also export a .tflite model.", default=False),
                    "checkpoints": _uri(
                        "s3:// prefix where checkpoints are kept so a restarted pod resumes; default "
                        "<output.uri>/checkpoints/.",
                        S3_PREFIX,
                    ),
                },
                required=["uri"],
            ),
            "resources": _obj(
                "Compute for the training pod (the preflight pod gets the operator's small CPU default).",
                {
                    "gpus": _int(
                        "nvidia.com/gpu limit (and request) of the training pod.",
                        minimum=0,
                        maximum=16,
                        default=1,
                    ),
                    "cpu": _quantity("CPU request and limit, e.g. 4 or 3500m; default from the operator."),
                    "memory": _quantity("Memory request and limit, e.g. 16Gi; default from the operator."),
                    "sharedMemory": _quantity(
                        "Size of /dev/shm (a memory emptyDir; counts against memory); default from the "
                        "operator."
                    ),
                    "workDirSize": {
                        **_quantity(
                            "Size limit of the /work emptyDir of the preflight and training pods (staged "
                            "audio, checkpoints, the initFrom.checkpoint download), e.g. 100Gi; default "
                            "from the operator (50Gi). A checkpoint tarball may unpack to at most a quarter "
                            "of it, a single member to an eighth."
                        ),
                        "pattern": SIZE,
                    },
                    "nodeSelector": {
                        "type": "object",
                        "description": "Node labels the training pod requires, as Pod nodeSelector.",
                        "maxProperties": 32,
                        "additionalProperties": _str("Label value.", maxLength=63),
                    },
                    "tolerations": {
                        "type": "array",
                        "description": "Extra tolerations of the training pod, as in a Pod; the "
                        "nvidia.com/gpu taint is tolerated automatically when gpus > 0.",
                        "maxItems": 32,
                        "items": _obj(
                            "A Pod toleration.",
                            {
                                "key": _str(
                                    "Taint key; empty with operator Exists matches all.", maxLength=316
                                ),
                                "operator": _str("Exists or Equal.", enum=["Exists", "Equal"]),
                                "value": _str("Taint value for Equal.", maxLength=63),
                                "effect": _str(
                                    "NoSchedule, PreferNoSchedule or NoExecute; empty matches all.",
                                    enum=["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
                                ),
                                "tolerationSeconds": _int("For NoExecute: how long to stay bound."),
                            },
                        ),
                    },
                    "affinity": {
                        "type": "object",
                        "description": "Pod affinity/anti-affinity/node affinity of the training pod, as "
                        "in a Pod (validated by the apiserver when the Job is created).",
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                    "priorityClassName": _str(
                        "PriorityClass of the training pod.", pattern=DNS_SUBDOMAIN, maxLength=253
                    ),
                },
                default={},
            ),
            "storage": _obj(
                "S3 access for data, checkpoints and models.",
                {
                    "endpoint": _str(
                        "S3-compatible endpoint URL (http or https); omit for AWS S3.",
                        pattern=HTTP_URL,
                        maxLength=512,
                    ),
                    "region": _str("S3 region.", default="us-east-1", maxLength=64),
                    "secretRef": _obj(
                        "Secret in the CR's namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                        "(optional AWS_SESSION_TOKEN); mounted as secretKeyRef env only. Absent = "
                        "workload identity.",
                        {"name": _str("Secret name.", pattern=DNS_SUBDOMAIN)},
                        required=["name"],
                    ),
                    "addressingStyle": _str(
                        "S3 addressing style.", enum=["auto", "path", "virtual"], default="auto"
                    ),
                },
                default={},
            ),
            "serviceAccountName": _str(
                "Run the trainer as this ServiceAccount (workload identity such as IRSA); it must carry "
                "the label training.deepspeech.dev/trainer-account=true (set by whoever may edit "
                "ServiceAccounts here), else the run waits; never the operator's own. Default: the "
                "operator-managed <name>-trainer account.",
                pattern=DNS_SUBDOMAIN,
            ),
            "queueName": _str(
                "Kueue LocalQueue; copied to the training Job's kueue.x-k8s.io/queue-name label.",
                pattern=DNS_SUBDOMAIN,
            ),
            "suspend": _bool(
                "true: the trainer checkpoints on SIGTERM and its Job is removed; false again: a new Job "
                "resumes from the checkpoint. Does not start a new run.",
                default=False,
            ),
            "preflight": _bool(
                "Validate data and configuration on a CPU-only pod before any GPU is requested.",
                default=True,
            ),
            "dryRun": _bool(
                "Run preflight, publish the planned DeepSpeech command lines in status.plan, and stop: no "
                "GPU Job. Needs preflight.",
                default=False,
            ),
            "runPolicy": _obj(
                "Retry and time limits of a run (across its Jobs: resumes and re-created Jobs continue them).",
                {
                    "backoffLimit": _int(
                        "Retries of a run's training (or preflight), counted across the Jobs of the run; "
                        "evictions and preemptions do not count.",
                        minimum=0,
                        maximum=100,
                        default=3,
                    ),
                    "activeDeadlineSeconds": _int(
                        "Time limit of a run in seconds, counted while its Jobs exist (not while "
                        "suspended); the run then fails with DeadlineExceeded.",
                        minimum=1,
                    ),
                },
                default={},
            ),
        },
        required=["data", "output"],
        **{"x-kubernetes-validations": spec_rules()},
    )


_PRE_07 = (
    "(has(self.deepspeech) && has(self.deepspeech.version) && "
    "self.deepspeech.version in " + str(list(api.PRE_07_VERSIONS)) + ")"
)
_HAS_DEV = "(has(self.data.dev) && size(self.data.dev) > 0)"
_HAS_TEST = "(has(self.data.test) && size(self.data.test) > 0)"
_GPUS = "(has(self.resources) && has(self.resources.gpus) ? self.resources.gpus : 1)"


def _rule(rule: str, message: str, field_path: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"rule": rule, "message": message, "fieldPath": field_path, "reason": reason}


def spec_rules() -> list[dict[str, str]]:
    """Cross-field rules (CEL). Each message starts with the field it is about."""
    training = "has(self.training)"
    coqui = f"self.deepspeech.engine == '{api.ENGINE_COQUI}'"
    return [
        _rule(
            "!has(self.deepspeech) || !has(self.deepspeech.version) || "
            f"({coqui} ? self.deepspeech.version in {list(api.COQUI_VERSIONS)} "
            f": self.deepspeech.version in {list(api.DEEPSPEECH_VERSIONS)})",
            "spec.deepspeech.version must be a release of spec.deepspeech.engine (deepspeech: "
            + ", ".join(api.DEEPSPEECH_VERSIONS)
            + "; coqui-stt: "
            + ", ".join(api.COQUI_VERSIONS)
            + ")",
            ".deepspeech.version",
        ),
        _rule(
            f"!{training} || !has(self.training.reduceLROnPlateau) || !{_PRE_07}",
            "spec.training.reduceLROnPlateau needs spec.deepspeech.version 0.7.4 or newer",
            ".training.reduceLROnPlateau",
        ),
        _rule(
            f"!{training} || !has(self.training.augmentations) || "
            f"size(self.training.augmentations) == 0 || !{_PRE_07}",
            "spec.training.augmentations needs spec.deepspeech.version 0.7.4 or newer",
            ".training.augmentations",
        ),
        _rule(
            f"!has(self.data.scorer) || !{_PRE_07}",
            "spec.data.scorer needs spec.deepspeech.version 0.7.4 or newer",
            ".data.scorer",
        ),
        _rule(
            "!has(self.initFrom) || !has(self.initFrom.dropSourceLayers) || "
            f"self.initFrom.dropSourceLayers == 0 || !{_PRE_07}",
            "spec.initFrom.dropSourceLayers needs spec.deepspeech.version 0.7.4 or newer",
            ".initFrom.dropSourceLayers",
        ),
        _rule(
            f"!{training} || !has(self.training.earlyStop) || {_HAS_DEV}",
            "spec.training.earlyStop needs spec.data.dev (it watches the validation loss)",
            ".training.earlyStop",
            "FieldValueRequired",
        ),
        _rule(
            f"!{training} || !has(self.training.reduceLROnPlateau) || {_HAS_DEV}",
            "spec.training.reduceLROnPlateau needs spec.data.dev (it watches the validation loss)",
            ".training.reduceLROnPlateau",
            "FieldValueRequired",
        ),
        _rule(
            f"!{training} || !has(self.training.batchSize) || !has(self.training.batchSize.dev) || "
            f"self.training.batchSize.dev == 1 || {_HAS_DEV}",
            "spec.training.batchSize.dev is above 1 but spec.data.dev is empty",
            ".training.batchSize.dev",
        ),
        _rule(
            f"!{training} || !has(self.training.batchSize) || !has(self.training.batchSize.test) || "
            f"self.training.batchSize.test == 1 || {_HAS_TEST}",
            "spec.training.batchSize.test is above 1 but spec.data.test is empty",
            ".training.batchSize.test",
        ),
        _rule(
            f"!{training} || !has(self.training.cudnn) || !self.training.cudnn || {_GPUS} > 0",
            "spec.training.cudnn needs spec.resources.gpus of at least 1",
            ".training.cudnn",
        ),
        _rule(
            f"!{training} || !has(self.training.mixedPrecision) || !self.training.mixedPrecision || "
            f"{_GPUS} > 0",
            "spec.training.mixedPrecision needs spec.resources.gpus of at least 1",
            ".training.mixedPrecision",
        ),
        _rule(
            "!has(self.dryRun) || !self.dryRun || !has(self.preflight) || self.preflight",
            "spec.dryRun needs spec.preflight (the dry run is the preflight)",
            ".dryRun",
        ),
        _rule(
            "!has(self.output.checkpoints) || self.output.checkpoints != self.output.uri",
            "spec.output.checkpoints must differ from spec.output.uri (models and checkpoints would mix)",
            ".output.checkpoints",
        ),
    ]


def status_schema() -> Schema:
    """Every field the operator or the trainer writes; a structural schema prunes anything else."""
    ts = {"format": "date-time", "maxLength": 64}
    problem = _obj(
        "One problem found by preflight.",
        {
            "file": _str("File (URI) the problem is in.", maxLength=MAX_URI_LEN),
            "line": _int("Line number in the file, when known."),
            "code": _str("Stable problem code.", maxLength=64),
            "message": _str("What is wrong.", maxLength=1024),
        },
    )
    return _obj(
        "Observed state, written by the operator (and progress/checkpoint/plan by the trainer).",
        {
            "observedGeneration": _int("metadata.generation this status describes."),
            "phase": _str(
                "Pending, Validating, Queued, Running, Succeeded, Failed or Suspended.", enum=list(api.PHASES)
            ),
            "conditions": {
                "type": "array",
                "description": "Ready, Reconciling and Stalled (kstatus) plus Validated, Queued, Running, "
                "Suspended, Succeeded and Failed.",
                "maxItems": 16,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": _condition(),
            },
            "run": _obj(
                "The current run.",
                {
                    "id": _str(
                        "Run id g<N>: N is the generation after the last one the operator had decided on "
                        "(the generation that started the run, unless several edits arrived at once).",
                        maxLength=32,
                    ),
                    "generation": _int("metadata.generation that started the run."),
                    "specHash": _str("Hash of the run-defining spec (all but suspend).", maxLength=64),
                    "acceptedSpecHash": _str(
                        "Hash of the spec after the apiserver's defaults changed under the run without a "
                        "new generation (a CRD or operator upgrade); the run continues under it.",
                        maxLength=64,
                    ),
                    "stage": _str(
                        "preflight or train: the Job the run is at.",
                        enum=[api.STAGE_PREFLIGHT, api.STAGE_TRAIN],
                    ),
                    "jobName": _str("Name of the run's current Job.", maxLength=63),
                    "image": _str("Trainer image of the run.", maxLength=512),
                    "failures": _int(
                        "Failed pods of the run's earlier Jobs of this stage (suspend/resume, a Job deleted "
                        "by hand); the next Job's backoffLimit is runPolicy.backoffLimit minus these."
                    ),
                    "activeSeconds": _int(
                        "Seconds the run's earlier Jobs existed; the next Job's activeDeadlineSeconds is "
                        "runPolicy.activeDeadlineSeconds minus these."
                    ),
                    "countedJob": _str(
                        "The last Job whose failures and time are in the two above.", maxLength=63
                    ),
                    "resumes": _int("Times the run was resumed after a suspend (Job suffix -s<N>)."),
                    "suspended": _bool("The run's Job was removed by spec.suspend."),
                    "startTime": _str("When the run's first Job was created.", **ts),
                    "completionTime": _str("When the run finished.", **ts),
                    "attempt": _int("Pod attempt of the current Job (1 + counted failures)."),
                    "lastExitCode": _int("Exit code of the trainer's last failed container."),
                    "lastFailureReason": _str(
                        "Why the last pod failed or cannot run, e.g. OOMKilled, Evicted, or "
                        "Unschedulable with the scheduler's message.",
                        maxLength=MAX_FAILURE_REASON,
                    ),
                },
            ),
            "preflight": _obj(
                "Result of the current run's preflight pod (from its termination message).",
                {
                    "runId": _str("Run these results belong to.", maxLength=32),
                    "ok": _bool("Preflight passed."),
                    "rows": _int("CSV rows checked."),
                    "problemCount": _int("Problems found (the list below may be capped)."),
                    "alphabetSize": _int("Number of symbols in the (derived) alphabet."),
                    "problems": {
                        "type": "array",
                        "description": "The first problems found.",
                        "maxItems": 50,
                        "items": problem,
                    },
                },
            ),
            "plan": _obj(
                "For a dry run: the exact DeepSpeech command lines the training would run (written by the "
                "trainer).",
                {
                    "version": _str("DeepSpeech version the plan is for.", maxLength=16),
                    "invocations": {
                        "type": "array",
                        "description": "Planned commands in order.",
                        "maxItems": 16,
                        "items": _obj(
                            "One planned command.",
                            {
                                "purpose": _str(
                                    "What this command does, e.g. train or export.", maxLength=64
                                ),
                                "argv": {
                                    "type": "array",
                                    "description": "Command line, one argument per entry.",
                                    "maxItems": 256,
                                    "items": _str("One argument.", maxLength=2048),
                                },
                            },
                        ),
                    },
                },
            ),
            "progress": _obj(
                "Live progress of the current run (written by the trainer; display by the operator).",
                {
                    "runId": _str(
                        "Run the progress belongs to; other runs' progress is ignored.", maxLength=32
                    ),
                    "epoch": _int("Epochs done."),
                    "epochs": _int("Epochs of the run."),
                    "step": _int("Global training step."),
                    "trainLoss": _num("Latest training loss."),
                    "devLoss": _num("Latest validation loss."),
                    "updatedAt": _str("When the trainer last reported.", **ts),
                    "display": _str("epoch/epochs, for the Epoch printer column.", maxLength=32),
                    "stoppedEarly": _bool(
                        "training.earlyStop ended training before training.epochs; epoch is what was trained."
                    ),
                },
            ),
            "checkpoint": _obj(
                "Newest checkpoint saved to S3.",
                {
                    "uri": _str("Checkpoint URI.", maxLength=MAX_URI_LEN),
                    "epoch": _int("Epochs contained in the checkpoint."),
                },
            ),
            "model": _obj(
                "Exported model of the last successful run.",
                {
                    "uri": _str(
                        "Folder the model was exported to (<output.uri>/<run id>/).", maxLength=MAX_URI_LEN
                    ),
                    "runId": _str("Run that produced it.", maxLength=32),
                    "files": {
                        "type": "array",
                        "description": "Exported files.",
                        "maxItems": 32,
                        "items": _str("File name or URI.", maxLength=MAX_URI_LEN),
                    },
                    "smokeTest": _obj(
                        "The exported model loaded by the engine's inference package and run on one test "
                        "clip. Reported, never fatal: judge quality by metrics.wer.",
                        {
                            "ok": _bool("The model loaded and transcribed."),
                            "model": _str("Model file that was loaded.", maxLength=256),
                            "file": _str("Audio file that was transcribed.", maxLength=256),
                            "transcript": _str("What the model heard.", maxLength=512),
                            "seconds": _num("Load and transcription time."),
                            "message": _str("Why it did not run, when ok is false.", maxLength=1024),
                        },
                    ),
                },
            ),
            "metrics": _obj(
                "Test results of the last successful run.",
                {
                    "wer": _num("Word error rate on data.test."),
                    "cer": _num("Character error rate on data.test."),
                    "loss": _num("Test loss."),
                },
            ),
            "history": {
                "type": "array",
                "description": "Past runs, newest last, bounded.",
                "maxItems": 20,
                "items": _obj(
                    "One past run.",
                    {
                        "id": _str("Run id.", maxLength=32),
                        "generation": _int("Generation that started it."),
                        "phase": _str(
                            "Succeeded, Failed or Superseded (replaced by a spec change).", maxLength=32
                        ),
                        "reason": _str("Reason of the final state.", maxLength=128),
                        "modelUri": _str("Exported model, if any.", maxLength=MAX_URI_LEN),
                        "wer": _num("Test WER, if any."),
                        "completionTime": _str("When it ended.", **ts),
                    },
                ),
            },
        },
    )


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase of the run."},
        {
            "name": "Epoch",
            "type": "string",
            "jsonPath": ".status.progress.display",
            "description": "Epochs done / epochs.",
        },
        {
            "name": "WER",
            "type": "number",
            "jsonPath": ".status.metrics.wer",
            "description": "Test WER of the last successful run.",
        },
        {
            "name": "Model",
            "type": "string",
            "jsonPath": ".status.model.uri",
            "description": "Exported model of the last successful run.",
        },
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "priority": 1,
            "description": "Ready condition.",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": api.CRD_NAME,
            "labels": {"app.kubernetes.io/name": api.OPERATOR_NAME, "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": [api.SHORT_NAME],
                "categories": [api.CATEGORY],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "DeepSpeechTraining trains a Mozilla DeepSpeech model as Kubernetes "
                            "Jobs: a CPU preflight, then a GPU training Job per run.",
                            "properties": {
                                "apiVersion": _str("APIVersion of this object.", maxLength=64),
                                "kind": _str("Kind of this object.", maxLength=64),
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }
