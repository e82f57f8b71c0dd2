"""Real training engines for tests, `make demo` and `make bench`: one Python 3.7 virtualenv per release.

Each engine is built once per machine into ~/.cache/deepspeech-operator/engines/<engine>-<version>/ by
trainer/engines/install_engine.py — the same recipe Dockerfile.trainer runs — and rebuilt when that
recipe or the release's constraints file changes. Coqui STT comes from PyPI and is always built;
DeepSpeech needs its source (GitHub is not reachable everywhere), found in this order:

1. DSO_DEEPSPEECH_SRC: a DeepSpeech git repository with the release tags (each tag is exported into the
   source cache), or a checkout of one release (used for that release only);
2. the source cache ~/.cache/deepspeech-operator/src/DeepSpeech-<version>/;
3. `git clone --depth 1 --branch v<version>` of the upstream repository, when it is reachable.

Without any of them the DeepSpeech engines are skipped, and so are the tests that need them (their skip
reason names DSO_DEEPSPEECH_SRC).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.config import CACHE, REPO

RECIPE_DIR = REPO / "trainer" / "engines"
RECIPE = RECIPE_DIR / "install_engine.py"
ENGINES_DIR = CACHE / "engines"
SOURCE_DIR = CACHE / "src"
SOURCE_VARIABLE = "DSO_DEEPSPEECH_SRC"
UPSTREAM = "https://github.com/mozilla/DeepSpeech.git"
# What `make engines` builds unless DSO_ENGINES lists others ("coqui-stt-1.4.0 deepspeech-0.9.3 ...").
DEFAULT_ENGINES = ("coqui-stt-1.4.0", "deepspeech-0.9.3", "deepspeech-0.6.0")
PYTHON_HINT = (
    "no CPython 3.7 found (TensorFlow 1.15 needs it): install one with `pyenv install 3.7` or "
    "`uv python install 3.7`, or put python3.7 on PATH"
)


@dataclass(frozen=True)
class Engine:
    """A built engine: its interpreter (DST_TF_PYTHON) and, for DeepSpeech, its checkout (DST_DEEPSPEECH_DIR)."""

    engine: str
    version: str
    python: Path
    source: Path | None

    @property
    def name(self) -> str:
        return f"{self.engine}-{self.version}"

    def trainer_env(self) -> dict[str, str]:
        """What the trainer image's ENV says about its engine, for this machine."""
        env = {"DST_TF_PYTHON": str(self.python)}
        if self.source is not None:
            env["DST_DEEPSPEECH_DIR"] = str(self.source)
        return env


def split_name(name: str) -> tuple[str, str]:
    engine, _, version = name.rpartition("-")
    if engine not in ("deepspeech", "coqui-stt") or not version:
        raise ValueError(f"engine name {name!r}: expected deepspeech-<version> or coqui-stt-<version>")
    return engine, version


def requested() -> tuple[str, ...]:
    listed = os.environ.get("DSO_ENGINES", "").split()
    return tuple(listed) if listed else DEFAULT_ENGINES


# ------------------------------------------------------------------------------------------- Python 3.7


def _is_python37(candidate: str) -> bool:
    try:
        out = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 7))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def find_python37() -> Path | None:
    """python3.7 on PATH, under pyenv, or as uv knows it."""
    candidates: list[str] = []
    if found := shutil.which("python3.7"):
        candidates.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.7*/bin/python3.7"), reverse=True)
    if shutil.which("uv"):
        out = subprocess.run(["uv", "python", "find", "3.7"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(out.stdout.strip())
    for candidate in candidates:
        if _is_python37(candidate):
            # A pyenv shim resolves through the selected versions; the real binary does not.
            resolved = subprocess.run(
                [candidate, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True
            ).stdout.strip()
            return Path(resolved or candidate)
    return None


# ----------------------------------------------------------------------------------- DeepSpeech source


def _checkout_version(folder: Path) -> str | None:
    for candidate in (folder / "training" / "deepspeech_training" / "VERSION", folder / "VERSION"):
        if candidate.is_file():
            return candidate.read_text().strip()
    return None


def _is_git_repository(folder: Path) -> bool:
    out = subprocess.run(["git", "-C", str(folder), "rev-parse", "--git-dir"], capture_output=True)
    return out.returncode == 0


def _export_tag(repository: Path, version: str, target: Path) -> bool:
    """`git archive v<version>` of a repository (bare or not) into target; False when the tag is absent."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "src.tar"
        out = subprocess.run(
            ["git", "-C", str(repository), "archive", "-o", str(archive), f"v{version}"], capture_output=True
        )
        if out.returncode != 0:
            return False
        unpacked = Path(tmp) / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        unpacked.rename(target)
    return True


def _clone(version: str, target: Path) -> bool:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        try:
            out = subprocess.run(
                ["git", "clone", "-q", "--depth", "1", "--branch", f"v{version}", UPSTREAM, f"{tmp}/tree"],
                capture_output=True,
                env=env,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            return False
        if out.returncode != 0:
            return False
        shutil.rmtree(f"{tmp}/tree/.git", ignore_errors=True)
        Path(f"{tmp}/tree").rename(target)
    return True


def deepspeech_source(version: str, *, fetch: bool = True) -> Path | None:
    """A checkout of DeepSpeech v<version>, or None (see the module docstring for the search order)."""
    cached = SOURCE_DIR / f"DeepSpeech-{version}"
    given = os.environ.get(SOURCE_VARIABLE)
    if given:
        folder = Path(given).expanduser().resolve()
        if _checkout_version(folder) == version:
            return folder
    if _checkout_version(cached) == version:
        return cached
    if not fetch:
        return None
    SOURCE_DIR.mkdir(parents=True, exist_ok=True)
    if given and _is_git_repository(Path(given)) and _export_tag(Path(given), version, cached):
        return cached
    if _clone(version, cached):
        return cached
    return None


# ------------------------------------------------------------------------------------------ the venvs


def _recipe_digest(engine: str, version: str, source: Path | None) -> str:
    digest = hashlib.sha256()
    # The recipe picks the per-Python file where one exists, so any of them may be the one this venv used.
    constraints = RECIPE_DIR / "constraints"
    for path in (
        RECIPE,
        constraints / f"{engine}-{version}.txt",
        *sorted(constraints.glob(f"{engine}-{version}-py*.txt")),
    ):
        digest.update(path.read_bytes())
    digest.update(str(source).encode())
    return digest.hexdigest()[:16]


def _stamp(folder: Path) -> Path:
    return folder / ".dso-engine"


@contextmanager
def _locked(name: str) -> Iterator[None]:
    ENGINES_DIR.mkdir(parents=True, exist_ok=True)
    with open(ENGINES_DIR / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def find(name: str) -> Engine | None:
    """The engine if it is built and up to date with its recipe (never builds)."""
    engine, version = split_name(name)
    source = deepspeech_source(version, fetch=False) if engine == "deepspeech" else None
    if engine == "deepspeech" and source is None:
        return None
    folder = ENGINES_DIR / name
    stamp = _stamp(folder)
    if not stamp.is_file() or stamp.read_text().strip() != _recipe_digest(engine, version, source):
        return None
    return Engine(engine, version, folder / "bin" / "python", source)


def skip_reason(name: str) -> str:
    engine, version = split_name(name)
    if engine == "deepspeech" and deepspeech_source(version, fetch=False) is None:
        return (
            f"DeepSpeech {version} source not available: set {SOURCE_VARIABLE} to a DeepSpeech git repository "
            f"or a v{version} checkout, then `make engines`"
        )
    return f"engine {name} is not built: run `make engines`"


def build(name: str, python: Path) -> Engine | None:
    """Build (or keep) one engine; None when its DeepSpeech source is unavailable."""
    engine, version = split_name(name)
    with _locked(name):
        source = deepspeech_source(version) if engine == "deepspeech" else None
        if engine == "deepspeech" and source is None:
            print(f"engines: {name} skipped: {skip_reason(name)}", flush=True)
            return None
        if (found := find(name)) is not None:
            print(f"engines: {name} up to date ({found.python})", flush=True)
            return found
        folder = ENGINES_DIR / name
        shutil.rmtree(folder, ignore_errors=True)
        print(f"engines: building {name} with {python} into {folder}", flush=True)
        subprocess.run([str(python), "-m", "venv", str(folder)], check=True)
        command = [str(folder / "bin" / "python"), str(RECIPE), "--engine", engine, "--version", version]
        if source is not None:
            command += ["--source", str(source)]
        log = folder / "install.log"
        with open(log, "w") as fh:
            result = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
            raise SystemExit(
                f"engines: {name} failed (exit {result.returncode}); last lines of {log}:\n{tail}"
            )
        _stamp(folder).write_text(_recipe_digest(engine, version, source) + "\n")
        return find(name)


def require(name: str) -> Engine:
    """The built engine, or skip the calling test with the reason (which names DSO_DEEPSPEECH_SRC)."""
    import pytest

    found = find(name)
    if found is None:
        pytest.skip(skip_reason(name))
    return found
