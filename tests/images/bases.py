"""Stand-in base images made here from Debian packages, for machines that cannot pull the real bases.

Both are LOCAL STAND-INS FOR CPU TESTS, labelled as such:
- the operator's: Debian bookworm with Debian's python3 (3.11), python3-venv and python-is-python3, in place of
  python:3.11.x-slim-bookworm (the same Debian release; Python 3.11.2 instead of the slim image's 3.11.x);
- the trainer's: Debian bookworm with this machine's own CPython 3.7 (or 3.6) build copied in (Debian bookworm has
  no such Python) and PyPI's CPU-only tensorflow 1.15.4, in place of NVIDIA's TF1 GPU container or the official
  tensorflow/tensorflow:1.15.4-gpu-py3.

Root filesystems come from `mmdebstrap --variant=apt` (cached as tarballs by package list); images are rebuilt
only when their inputs change (label dso.inputs).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.cluster.config import REPO
from tests.images import containers

SUITE = "bookworm"
OPERATOR_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
# What a pyenv CPython links against (ldd of libpython and lib-dynload), bash for the Dockerfile's SHELL.
TF1_PACKAGES = (
    "bash",
    "ca-certificates",
    "libbz2-1.0",
    "libexpat1",
    "libffi8",
    "libgssapi-krb5-2",
    "liblzma5",
    "libncursesw6",
    "libnsl2",
    "libreadline8",
    "libsqlite3-0",
    "libssl3",
    "libstdc++6",
    "libtirpc3",
    "libuuid1",
    "zlib1g",
)
OPERATOR_STANDIN = "deepspeech-operator-standin/python:3.11-bookworm"
TF1_CONTAINERFILE = REPO / "tests" / "images" / "Containerfile.tf1-standin"
TENSORFLOW_VERSION = "1.15.4"
# The newest protobuf 3 release for each Python (3.20 dropped 3.6).
PROTOBUF_OF = {"3.6": "3.19.6", "3.7": "3.20.3"}
INPUTS_LABEL = "dso.inputs"
# Kept out of the copied CPython: tests, GUI, compiled caches and whatever this machine installed into it.
SKIPPED = {
    "test",
    "tests",
    "idlelib",
    "tkinter",
    "turtledemo",
    "__pycache__",
    "ensurepip/_bundled/__pycache__",
}
KEPT_SITE_PACKAGES = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth")


def _digest(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
    return digest.hexdigest()[:12]


def rootfs_image(packages: tuple[str, ...]) -> str:
    """A Debian root filesystem with these packages, as a local image (mmdebstrap once per package list)."""
    key = _digest(SUITE, *packages)
    image = f"deepspeech-operator-standin/rootfs:{SUITE}-{key}"
    if containers.exists(image):
        return image
    tarball = containers.IMAGES_CACHE / f"rootfs-{SUITE}-{key}.tar"
    if not tarball.exists():
        partial = tarball.with_suffix(".partial.tar")
        containers.run(
            ["mmdebstrap", "--variant=apt", f"--include={','.join(packages)}", SUITE, str(partial)]
        )
        partial.rename(tarball)
    containers.run(["podman", "import", "--change", 'CMD ["bash"]', str(tarball), image])
    return image


def operator_base() -> str:
    if containers.label(OPERATOR_STANDIN, INPUTS_LABEL) == _digest(*OPERATOR_PACKAGES):
        return OPERATOR_STANDIN
    print(f"images: building the LOCAL STAND-IN operator base {OPERATOR_STANDIN} (Debian {SUITE} + python3)")
    rootfs = rootfs_image(OPERATOR_PACKAGES)
    description = (
        "LOCAL STAND-IN BASE for CPU tests: Debian bookworm python3, in place of python:3.11-slim-bookworm"
    )
    containers.run(
        ["buildah", "from", "--pull=never", "--name", "dso-operator-standin", rootfs],
        stdout=subprocess.DEVNULL,
    )
    try:
        containers.run(
            [
                "buildah",
                "config",
                "--label",
                f"{INPUTS_LABEL}={_digest(*OPERATOR_PACKAGES)}",
                "--label",
                f"org.opencontainers.image.description={description}",
                "--cmd",
                "python3",
                "dso-operator-standin",
            ]
        )
        containers.run(["buildah", "commit", "--rm", "dso-operator-standin", OPERATOR_STANDIN])
    except BaseException:
        subprocess.run(["buildah", "rm", "dso-operator-standin"], env=containers.env(), capture_output=True)
        raise
    return OPERATOR_STANDIN


def find_pyenv_python(version: str) -> Path | None:
    """The newest pyenv CPython <version>.x on this machine (its prefix folder)."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True)
    return Path(found[0]).parents[1] if found else None


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = {n for n in names if n in SKIPPED or n.endswith(".pyc")}
    if os.path.basename(directory) == "site-packages":
        skipped |= {n for n in names if not n.startswith(KEPT_SITE_PACKAGES)}
    if os.path.basename(directory) == "bin":
        # Console scripts carry this machine's absolute shebangs; the interpreter and its links are enough.
        skipped |= {n for n in names if not n.startswith("python")}
    return skipped


# Where a CPython records its own prefix for building extensions (compiler and linker flags, LIBDIR).
BUILD_CONFIG_FILES = (
    "lib/python3.*/_sysconfigdata_*.py",
    "lib/python3.*/config-3.*/Makefile",
    "lib/python3.*/config-3.*/python-config.py",
    "lib/pkgconfig/*.pc",
)


def relocatable_cpython(prefix: Path, target: Path, installed_at: str | None = None) -> Path:
    """A copy of a CPython install that runs from any folder: its interpreter finds libpython via $ORIGIN.

    installed_at: the folder the copy will live in, where it builds C extensions. Without it the copy's build
    configuration still names this machine's prefix: CPython <= 3.7 links extensions against libpython
    (-L<prefix>/lib -lpython3.Xm), and that folder does not exist in an image.
    """
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(prefix, target, symlinks=True, ignore=_ignore)
    for interpreter in (target / "bin").iterdir():
        if re.fullmatch(r"python3\.\d+m?", interpreter.name) and not interpreter.is_symlink():
            subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(interpreter)], check=True)
    if installed_at is not None:
        for pattern in BUILD_CONFIG_FILES:
            for path in target.glob(pattern):
                path.write_text(path.read_text().replace(str(prefix), installed_at))
    return target


def tf1_base(python_version: str) -> str:
    """The trainer's stand-in TF1 base with CPython <python_version> from pyenv."""
    prefix = find_pyenv_python(python_version)
    if prefix is None:
        raise SystemExit(
            f"images: no pyenv CPython {python_version} for the stand-in TF1 base: pyenv install {python_version}"
        )
    image = f"deepspeech-operator-standin/tf1:{TENSORFLOW_VERSION}-py{python_version}"
    # Containerfile.tf1-standin copies the CPython there.
    installed_at = f"/opt/python{python_version}"
    inputs = _digest(
        TF1_CONTAINERFILE.read_bytes(),
        str(prefix),
        installed_at,
        TENSORFLOW_VERSION,
        PROTOBUF_OF[python_version],
        *TF1_PACKAGES,
    )
    if containers.label(image, INPUTS_LABEL) == inputs:
        return image
    print(
        f"images: building the LOCAL STAND-IN TF1 base {image} for CPU tests: Debian {SUITE}, CPython from "
        f"{prefix} (pyenv) copied in, tensorflow=={TENSORFLOW_VERSION} (PyPI CPU wheel). The trainer image targets "
        "NVIDIA's TF1 container (23.03-tf1-py3) or tensorflow/tensorflow:1.15.4-gpu-py3 instead."
    )
    rootfs = rootfs_image(TF1_PACKAGES)
    context = containers.IMAGES_CACHE / f"tf1-py{python_version}-context"
    context.mkdir(parents=True, exist_ok=True)
    relocatable_cpython(prefix, context / "python", installed_at)
    containers.run(
        [
            "buildah",
            "bud",
            "--pull=never",
            "--layers",
            *containers.build_mounts(),
            "--build-arg",
            f"ROOTFS={rootfs}",
            "--build-arg",
            f"PYTHON_VERSION={python_version}",
            "--build-arg",
            f"TENSORFLOW_VERSION={TENSORFLOW_VERSION}",
            "--build-arg",
            f"PROTOBUF_VERSION={PROTOBUF_OF[python_version]}",
            "--label",
            f"{INPUTS_LABEL}={inputs}",
            "-f",
            str(TF1_CONTAINERFILE),
            "-t",
            image,
            str(context),
        ]
    )
    return image


def supervisor_archive(python_version: str, inputs_dir: Path) -> Path:
    """A relocatable CPython tarball (top folder python/, python-build-standalone's layout) in the build context."""
    prefix = find_pyenv_python(python_version)
    if prefix is None:
        raise SystemExit(
            f"images: no pyenv CPython {python_version} for the supervisor: pyenv install {python_version}"
        )
    archive = inputs_dir / f"cpython-{prefix.name}-relocatable.tar"
    if archive.exists():
        return archive
    staging = inputs_dir / "python"
    relocatable_cpython(prefix, staging)
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        tar.add(staging, arcname="python")
    shutil.rmtree(staging)
    partial.rename(archive)
    return archive
