"""Operator configuration from CLI flags, each with an environment variable as its default.

Every flag can be given as `DST_OPERATOR_<NAME>` (upper case, dashes as underscores) so the Helm chart can
set everything through `env:`. Bad values raise ConfigError naming the flag and the variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import api, schema

ENV_PREFIX = "DST_OPERATOR_"
DEFAULT_IMAGE_REPOSITORY = "deepspeech-operator/trainer"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the flag."""


@dataclasses.dataclass(frozen=True)
class Resources:
    cpu: str
    memory: str
    shared_memory: str = "64Mi"
    work_dir_size: str = "50Gi"  # sizeLimit of the /work emptyDir; the trainer derives tarball limits from it


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty = all namespaces
    image_repository: str = DEFAULT_IMAGE_REPOSITORY
    images: Mapping[str, str] = dataclasses.field(default_factory=dict)  # version -> image overrides
    allowed_image_prefixes: tuple[str, ...] = (DEFAULT_IMAGE_REPOSITORY + ":",)
    image_pull_policy: str = "IfNotPresent"
    metrics_port: int = 8080
    liveness_port: int = 8081
    train_defaults: Resources = Resources(cpu="4", memory="16Gi", shared_memory="2Gi")
    preflight_resources: Resources = Resources(cpu="1", memory="2Gi", shared_memory="64Mi")
    train_grace_seconds: int = 300  # time for the trainer to write a checkpoint to S3 after SIGTERM
    preflight_grace_seconds: int = 30
    run_as_user: int = 1000
    history_limit: int = 10
    # Every API request of the operator (its own calls and kopf's) gives up after this long and is retried;
    # a watch stream is ended by the server after watch_timeout_seconds and dropped by the operator when it
    # stays silent for longer (a dead connection). See timeouts.py and docs/operator.md.
    api_timeout_seconds: int = 20
    watch_timeout_seconds: int = 30
    liveness_stall_seconds: int = 0  # 0: derived from the API timeout and its retries (liveness.py)
    own_service_account: str = ""  # "<namespace>/<name>": never lent to a trainer (accounts.py)
    # Period of the level-triggered resync (handlers._resync_loop); 0 turns it off.
    resync_seconds: int = 60
    verbose: bool = False

    def image_for(self, version: str) -> str:
        """Default trainer image of a release (api.release_name: `0.9.3`, `coqui-stt-1.4.0`)."""
        return self.images.get(version) or f"{self.image_repository}:{version}"

    def image_allowed(self, image: str) -> bool:
        return any(image.startswith(prefix) for prefix in self.allowed_image_prefixes)


def _env(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepspeech-operator",
        description="Kubernetes operator that trains Mozilla DeepSpeech models (DeepSpeechTraining CRs). "
        f"Every flag also reads {ENV_PREFIX}<FLAG> from the environment.",
    )

    def add(flag: str, help_text: str, **kwargs: Any) -> None:
        env = _env(flag)
        parser.add_argument(
            f"--{flag}", default=os.environ.get(env), help=f"{help_text} [env {env}]", **kwargs
        )

    add("namespaces", "comma-separated namespaces to watch; empty = all namespaces")
    add(
        "image-repository",
        f"trainer image repository; default image = <repository>:<version> "
        f"(default {DEFAULT_IMAGE_REPOSITORY})",
    )
    add(
        "images",
        "per-release default images, e.g. 0.9.3=my/trainer:0.9.3,coqui-stt-1.4.0=my/trainer:coqui-stt-1.4.0",
    )
    add(
        "allowed-image-prefixes",
        "comma-separated prefixes spec.deepspeech.image must start with (default: <image-repository>:)",
    )
    add("image-pull-policy", "imagePullPolicy of trainer containers (default IfNotPresent)")
    add("metrics-port", "port of the Prometheus /metrics endpoint (default 8080)")
    add("liveness-port", "port of the /healthz liveness endpoint (default 8081)")
    add("train-cpu", "default CPU of training pods (default 4)")
    add("train-memory", "default memory of training pods (default 16Gi)")
    add("train-shared-memory", "default /dev/shm size of training pods (default 2Gi)")
    add("train-work-dir-size", "default size limit of the /work emptyDir of trainer pods (default 50Gi)")
    add("preflight-cpu", "CPU of preflight pods (default 1)")
    add("preflight-memory", "memory of preflight pods (default 2Gi)")
    add("train-grace-seconds", "terminationGracePeriodSeconds of training pods (default 300)")
    add("run-as-user", "UID the trainer runs as (default 1000)")
    add("history-limit", "runs kept in status.history (default 10, at most 20)")
    add(
        "api-timeout-seconds",
        "timeout of one API request of the operator; a request that times out is retried with backoff "
        "on a fresh connection (default 20)",
    )
    add(
        "watch-timeout-seconds",
        "the API server ends each watch after this long; a watch silent for 10 s longer is presumed dead "
        "and reopened (default 30)",
    )
    add(
        "liveness-stall-seconds",
        "/healthz fails while an API call has run this long (default 0: its timeouts and retries plus 30 s)",
    )
    add(
        "own-service-account",
        "the operator's own ServiceAccount, <namespace>/<name>, which spec.serviceAccountName may never name "
        "(default: read from the in-cluster token)",
    )
    add(
        "resync-seconds",
        "period in which every CR whose reconciler missed its children's latest state is woken "
        "(default 60; 0 = off)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=os.environ.get(_env("verbose"), "") in ("1", "true"),
        help=f"debug logging [env {_env('verbose')}]",
    )
    return parser


def _int(value: str | None, flag: str, default: int, lo: int, hi: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"--{flag} ({_env(flag)}): {value!r} is not an integer") from None
    if not lo <= number <= hi:
        raise ConfigError(f"--{flag} ({_env(flag)}): {number} is outside {lo}..{hi}")
    return number


def _quantity(value: str | None, flag: str, default: str) -> str:
    if value in (None, ""):
        return default
    if not _QUANTITY.match(value):
        raise ConfigError(f"--{flag} ({_env(flag)}): {value!r} is not a quantity such as 4, 500m or 16Gi")
    return value


def _size(value: str | None, flag: str, default: str) -> str:
    if value in (None, ""):
        return default
    if not re.match(schema.SIZE, value):
        raise ConfigError(f"--{flag} ({_env(flag)}): {value!r} is not a size such as 500M or 50Gi")
    return value


def _images(value: str | None) -> dict[str, str]:
    images: dict[str, str] = {}
    for item in _split(value or ""):
        version, sep, image = item.partition("=")
        if not sep or not image:
            raise ConfigError(f"--images ({_env('images')}): {item!r} is not <release>=<image>")
        if version not in api.RELEASE_NAMES:
            raise ConfigError(
                f"--images ({_env('images')}): unknown release {version!r}; "
                f"known: {', '.join(api.RELEASE_NAMES)}"
            )
        images[version] = image
    return images


def _account(value: str | None) -> str:
    if not value:
        return ""
    namespace, sep, name = value.partition("/")
    if not (sep and _DNS_LABEL.match(namespace) and _DNS_SUBDOMAIN.match(name)):
        raise ConfigError(
            f"--own-service-account ({_env('own-service-account')}): {value!r} is not <namespace>/<name>"
        )
    return value


def parse(argv: Sequence[str] | None = None) -> OperatorConfig:
    """Configuration from flags (and their environment variables)."""
    args = _parser().parse_args(argv)
    repository = args.image_repository or DEFAULT_IMAGE_REPOSITORY
    images = _images(args.images)
    prefixes = _split(args.allowed_image_prefixes or "") or (repository + ":",)
    pull = args.image_pull_policy or "IfNotPresent"
    if pull not in ("Always", "IfNotPresent", "Never"):
        raise ConfigError(
            f"--image-pull-policy ({_env('image-pull-policy')}): {pull!r} is not Always, "
            "IfNotPresent or Never"
        )
    config = OperatorConfig(
        namespaces=_split(args.namespaces or ""),
        image_repository=repository,
        images=images,
        allowed_image_prefixes=prefixes,
        image_pull_policy=pull,
        metrics_port=_int(args.metrics_port, "metrics-port", 8080, 1, 65535),
        liveness_port=_int(args.liveness_port, "liveness-port", 8081, 1, 65535),
        train_defaults=Resources(
            cpu=_quantity(args.train_cpu, "train-cpu", "4"),
            memory=_quantity(args.train_memory, "train-memory", "16Gi"),
            shared_memory=_quantity(args.train_shared_memory, "train-shared-memory", "2Gi"),
            work_dir_size=_size(args.train_work_dir_size, "train-work-dir-size", "50Gi"),
        ),
        preflight_resources=Resources(
            cpu=_quantity(args.preflight_cpu, "preflight-cpu", "1"),
            memory=_quantity(args.preflight_memory, "preflight-memory", "2Gi"),
        ),
        train_grace_seconds=_int(args.train_grace_seconds, "train-grace-seconds", 300, 0, 86400),
        run_as_user=_int(args.run_as_user, "run-as-user", 1000, 1, 2**31 - 1),
        history_limit=_int(args.history_limit, "history-limit", 10, 1, 20),
        api_timeout_seconds=_int(args.api_timeout_seconds, "api-timeout-seconds", 20, 1, 300),
        watch_timeout_seconds=_int(args.watch_timeout_seconds, "watch-timeout-seconds", 30, 5, 3600),
        liveness_stall_seconds=_int(args.liveness_stall_seconds, "liveness-stall-seconds", 0, 0, 86400),
        own_service_account=_account(args.own_service_account),
        resync_seconds=_int(args.resync_seconds, "resync-seconds", 60, 0, 86400),
        verbose=args.verbose,
    )
    for version, image in images.items():
        if not config.image_allowed(image):
            raise ConfigError(
                f"--images ({_env('images')}): image {image!r} for {version} does not start "
                "with an allowed image prefix (--allowed-image-prefixes)"
            )
    return config
