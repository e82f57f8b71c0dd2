"""`make images`: build Dockerfile.operator and Dockerfile.trainer with buildah, no Docker daemon or registry needed.

Bases: where the real ones can be pulled (DSO_IMAGE_BASES=auto, the default, tries; =registry insists) the
Dockerfiles build against them unchanged. Otherwise (=standin, or a failed pull) they build against LOCAL
STAND-IN BASES FOR CPU TESTS made here from Debian packages (tests/images/bases.py says what each stands in for).
The trainer's real base lives in a registry the repository never names: give it as DSO_TRAINER_BASE_IMAGE.

Trainer images, one per engine (DSO_IMAGE_ENGINES, default "coqui-stt-1.4.0 deepspeech-0.9.3"): Coqui STT always;
DeepSpeech where its source is found (tests/engines: DSO_DEEPSPEECH_SRC or the source cache). They are built the
air-gapped way (docs/images.md): the DeepSpeech checkout and a relocatable CPython for the supervisor come from
the build context (.image-inputs/, git-ignored), never from GitHub. deepspeech-0.6.0 builds on a Python 3.6
stand-in of the official base with TENSORFLOW=install (TF 1.14), the combination that needs decoder 0.6.1,
the recipe's Python 3.6 constraints (trainer/engines/constraints/deepspeech-0.6.0-py3.6.txt) and
Python-3.6-compatible recipe code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests import engines
from tests.cluster.config import REPO
from tests.images import bases, containers
from tests.unit.packaging.dockerfile import parse

INPUTS_DIR = REPO / ".image-inputs"
VERSION = tomllib.loads((REPO / "operator" / "pyproject.toml").read_text())["project"]["version"]
OPERATOR_IMAGE = f"deepspeech-operator/operator:{VERSION}"
DEFAULT_ENGINES = ("coqui-stt-1.4.0", "deepspeech-0.9.3")
SUPERVISOR_PYTHON = "3.11"
BASES_VARIABLE = "DSO_IMAGE_BASES"
HINT = "run `make images` (buildah, no Docker daemon; about 10 minutes from a clean cache)"


def trainer_image(engine_name: str) -> str:
    return f"deepspeech-operator/trainer:{engine_name}"


@dataclass(frozen=True)
class TrainerBuild:
    """One trainer image: the engine, the base's Python and who brings TensorFlow."""

    engine: str
    version: str
    python: str
    tensorflow: str

    @property
    def name(self) -> str:
        return f"{self.engine}-{self.version}"


def trainer_build(name: str) -> TrainerBuild:
    engine, version = engines.split_name(name)
    if engine == "deepspeech" and version.startswith("0.6."):
        # The official base's Python 3.6; 0.6.x pins TF 1.14, which the recipe installs over the base's 1.15.
        return TrainerBuild(engine, version, python="3.6", tensorflow="install")
    return TrainerBuild(engine, version, python="3.7", tensorflow="base")


def requested() -> tuple[str, ...]:
    listed = os.environ.get("DSO_IMAGE_ENGINES", "").split()
    return tuple(listed) if listed else DEFAULT_ENGINES


def missing_reason(image: str) -> str | None:
    """Why a test cannot use this image (None when it is built)."""
    if missing := containers.missing_tools():
        return f"{', '.join(missing)} not installed ({containers.TOOLS_HINT}); then {HINT}"
    if not containers.exists(image):
        return f"image {image} not built: {HINT}"
    return None


# ------------------------------------------------------------------------------------------ the shell


def _pull(image: str) -> bool:
    out = subprocess.run(
        ["podman", "pull", image],
        env=containers.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        print(
            f"images: cannot pull {image}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}"
        )
    return out.returncode == 0


def _choose_base(real: str | None, make_standin, what: str) -> tuple[str, str]:
    """(image, "registry" | "stand-in")."""
    mode = os.environ.get(BASES_VARIABLE, "auto")
    if mode not in ("auto", "registry", "standin"):
        raise SystemExit(f"images: {BASES_VARIABLE}={mode!r}: expected auto, registry or standin")
    if real and mode != "standin" and _pull(real):
        return real, "registry"
    if mode == "registry":
        raise SystemExit(
            f"images: {BASES_VARIABLE}=registry but the {what} base {real or '(none given)'} cannot be pulled"
        )
    return make_standin(), "stand-in"


def _stage_source(source: Path, version: str) -> str:
    """The DeepSpeech checkout inside the build context (hard links where possible); its path there."""
    target = INPUTS_DIR / f"DeepSpeech-{version}"
    if not target.exists():
        INPUTS_DIR.mkdir(exist_ok=True)
        partial = INPUTS_DIR / f".DeepSpeech-{version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        partial.rename(target)
    return str(target.relative_to(REPO))


def _bud(dockerfile: str, image: str, build_args: dict[str, str]) -> float:
    # Docker format: the OCI format drops SHELL (Dockerfile.trainer's bash -o pipefail) with only a warning.
    command = ["buildah", "bud", "--format", "docker", "--pull=never", "--layers", *containers.build_mounts()]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    return containers.timed([*command, "-f", str(REPO / dockerfile), "-t", image, str(REPO)])


def build_operator() -> dict:
    real = parse(REPO / "Dockerfile.operator").global_args["PYTHON_IMAGE"]
    base, kind = _choose_base(real, bases.operator_base, "operator")
    args = {} if kind == "registry" else {"PYTHON_IMAGE": base}
    seconds = _bud("Dockerfile.operator", OPERATOR_IMAGE, args)
    return {
        "image": OPERATOR_IMAGE,
        "base": base,
        "base_kind": kind,
        "seconds": round(seconds),
        "mb": containers.size_mb(OPERATOR_IMAGE),
    }


def build_trainer(build: TrainerBuild) -> dict | None:
    args = {"ENGINE": build.engine, "ENGINE_VERSION": build.version, "TENSORFLOW": build.tensorflow}
    if build.engine == "deepspeech":
        source = engines.deepspeech_source(build.version)
        if source is None:
            print(f"images: {build.name} skipped: {engines.skip_reason(build.name)}")
            return None
        args["DEEPSPEECH_SOURCE"] = _stage_source(source, build.version)
    real = os.environ.get("DSO_TRAINER_BASE_IMAGE")
    base, kind = _choose_base(real, lambda: bases.tf1_base(build.python), "trainer")
    args["BASE_IMAGE"] = base
    archive = bases.supervisor_archive(SUPERVISOR_PYTHON, INPUTS_DIR)
    args["SUPERVISOR_PYTHON_ARCHIVE"] = str(archive.relative_to(REPO))
    image = trainer_image(build.name)
    seconds = _bud("Dockerfile.trainer", image, args)
    return {
        "image": image,
        "base": base,
        "base_kind": kind,
        "seconds": round(seconds),
        "mb": containers.size_mb(image),
    }


def build_all() -> list[dict]:
    if missing := containers.missing_tools():
        raise SystemExit(f"images: {', '.join(missing)} not found: {containers.TOOLS_HINT}")
    started = time.monotonic()
    results = [build_operator()]
    for name in requested():
        if (result := build_trainer(trainer_build(name))) is not None:
            results.append(result)
    print(f"\nimages: built in {time.monotonic() - started:.0f} s")
    for result in results:
        note = " (LOCAL STAND-IN BASE for CPU tests)" if result["base_kind"] == "stand-in" else ""
        print(f"  {result['image']}: {result['mb']} MB, {result['seconds']} s, base {result['base']}{note}")
    return results


def clean() -> None:
    """Remove the images, the stand-in bases, their root filesystems and the staged build inputs."""
    out = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        env=containers.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    ours = [n for n in out.stdout.split() if "/deepspeech-operator" in n]
    if ours:
        subprocess.run(["podman", "rmi", "--force", *ours], env=containers.env(), check=False)
    subprocess.run(["buildah", "prune", "--force"], env=containers.env(), check=False)
    for tarball in containers.IMAGES_CACHE.glob("rootfs-*.tar"):
        tarball.unlink()
    shutil.rmtree(INPUTS_DIR, ignore_errors=True)
