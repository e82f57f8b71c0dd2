"""Checkpoints: the run's own store in S3, restore on start, and the init (source) checkpoint.

Layout under `<output.checkpoints>/<run id>/`: the `train-N`/`best_dev-N` files the state files
reference, the state files `checkpoint` and `best_dev_checkpoint` (paths as basenames, so any pod can
use them), `flags.txt`, `run-state.json` and, written last, `latest`. A reader that finds `latest`
therefore finds a complete set: data files go up before the state file that references them
(pitfall 16), and files no state file references are never uploaded and are pruned remotely.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from deepspeech_trainer import archive, s3
from deepspeech_trainer.alphabet import parse_alphabet
from deepspeech_trainer.archive import ArchiveLimits, ArchiveRules
from deepspeech_trainer.csvdata import Problem
from deepspeech_trainer.exitcodes import InvalidInput, TransientError

log = logging.getLogger(__name__)

STATE_FILES = ("checkpoint", "best_dev_checkpoint")
RUN_STATE = "run-state.json"
LATEST = "latest"
FLAGS_TXT = "flags.txt"
ALPHABET_TXT = "alphabet.txt"
HTTP_TIMEOUT_S = 10

_PATH_LINE = re.compile(
    r'^(\s*(?:model_checkpoint_path|all_model_checkpoint_paths)\s*:\s*)"((?:[^"\\]|\\.)*)"\s*$'
)
_CKPT_FILE = re.compile(r"^(?P<prefix>(?:train|best_dev)-\d+)\.(?:index|meta|data-\d+-of-\d+)$")


# --------------------------------------------------------------------------------------------- state files


def state_paths(text: str) -> list[str]:
    """All checkpoint paths a CheckpointState text names, newest (model_checkpoint_path) first."""
    newest: list[str] = []
    others: list[str] = []
    for line in text.splitlines():
        m = _PATH_LINE.match(line)
        if not m:
            continue
        value = m.group(2).replace('\\"', '"').replace("\\\\", "\\")
        (newest if "model_checkpoint_path" in m.group(1) and "all_" not in m.group(1) else others).append(
            value
        )
    out: list[str] = []
    for p in newest + others:
        if p not in out:
            out.append(p)
    return out


def newest_train_checkpoint(directory: Path) -> str | None:
    """Basename of the newest checkpoint TensorFlow's state file names (it replaces that file atomically
    after the checkpoint's files are written), or None before the first save."""
    try:
        paths = state_paths((directory / "checkpoint").read_text(encoding="utf-8"))
    except OSError:
        return None
    return PurePosixPath(paths[0]).name if paths else None


def _step_of(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


def complete_prefixes(prefixes: Iterable[str], names: Iterable[str]) -> list[str]:
    """The checkpoints whose `.index` and `.data-*` files are all among `names`, newest (highest step)
    first."""
    present = set(names)
    out = []
    for prefix in prefixes:
        shards = [n for n in present if n.startswith(prefix + ".data-")]
        total = {n.rsplit("-of-", 1)[1] for n in shards if "-of-" in n}
        whole = len(total) == 1 and len(shards) == int(next(iter(total)))
        if prefix + ".index" in present and whole:
            out.append(prefix)
    return sorted(out, key=_step_of, reverse=True)


def state_text(prefixes: list[str]) -> str:
    """A TensorFlow CheckpointState text naming `prefixes`, newest first."""
    if not prefixes:
        return ""
    lines = [f'model_checkpoint_path: "{prefixes[0]}"']
    lines += [f'all_model_checkpoint_paths: "{p}"' for p in sorted(prefixes, key=_step_of)]
    return "\n".join(lines) + "\n"


def _fell_back(state: RunState, usable: list[str]) -> RunState:
    """The run state of the newest complete checkpoint, when the newest one named is not complete."""
    if not usable:
        state.checkpoint, state.epochs_done = None, 0
        return state
    state.checkpoint = usable[0]
    state.epochs_done = state.epochs_by_checkpoint.get(usable[0], 0)
    return state


def rewrite_state(text: str, directory: str | None) -> str:
    """Every path → its basename (directory None) or `<directory>/<basename>` (reference §5.2)."""
    lines = []
    for line in text.splitlines():
        m = _PATH_LINE.match(line)
        if m:
            base = PurePosixPath(m.group(2).replace("\\\\", "\\")).name
            new = base if directory is None else f"{directory.rstrip('/')}/{base}"
            line = f'{m.group(1)}"{new}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def checkpoint_files(directory: Path, prefix: str) -> list[Path]:
    """`<prefix>.data-*`, `.index`, `.meta` present in `directory` (data first: the index names them)."""
    try:
        names = [p.name for p in directory.iterdir()]
    except OSError:
        return []
    data = sorted(n for n in names if n.startswith(prefix + ".data-"))
    rest = [n for n in (prefix + ".index", prefix + ".meta") if n in names]
    return [directory / n for n in data + rest]


def local_prefixes(directory: Path, state_name: str) -> list[str]:
    path = directory / state_name
    try:
        return [PurePosixPath(p).name for p in state_paths(path.read_text(encoding="utf-8"))]
    except OSError:
        return []


def rewrite_local_state_files(directory: Path) -> None:
    for name in STATE_FILES:
        path = directory / name
        if path.is_file():
            path.write_text(rewrite_state(path.read_text(encoding="utf-8"), str(directory)), encoding="utf-8")


def parse_flags_txt(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("--") and "=" in line:
            name, _, value = line[2:].partition("=")
            out[name.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------------------------- run state


@dataclass
class RunState:
    run_id: str = ""
    epochs_done: int = 0
    best_dev_loss: float | None = None
    best_dev: str | None = None  # best_dev-N prefix in the store
    checkpoint: str | None = None  # newest train-N prefix in the store
    updated_at: float = 0.0
    # Whole epochs in each train-N the store keeps: a restore that must fall back to an older one knows.
    epochs_by_checkpoint: dict[str, int] = field(default_factory=dict)
    # Who wrote the store (run_identity): a restore by anyone else is refused (check_identity).
    identity: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunState:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class SyncResult:
    uploaded: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    epochs_done: int = 0


class CheckpointStore:
    """Mirror of one run's checkpoint dir in S3. Thread-safe: a timer and the epoch-end hook may sync."""

    def __init__(
        self,
        storage: s3.Storage,
        base: s3.S3Uri,
        local_dir: Path,
        run_id: str,
        identity: Mapping[str, str] | None = None,
    ) -> None:
        self.storage = storage
        self.base = base.folder
        self.local_dir = local_dir
        self.run_id = run_id
        self.identity = dict(identity) if identity else None
        self.state = RunState(run_id=run_id, identity=self.identity)
        self._uploaded: dict[str, tuple[int, int]] = {}  # name → (size, mtime_ns) known to be in S3
        # State files this process put into (or restored from) the store: pruning keeps what they name and
        # never reads the store to decide, so a failed read cannot make live checkpoints look unreferenced.
        self._remote_states: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_spec(
        cls,
        storage: s3.Storage,
        spec: Mapping[str, Any],
        local_dir: Path,
        run_id: str,
        identity: Mapping[str, str] | None = None,
        run_path: str | None = None,
    ) -> CheckpointStore:
        """The store at `<output.checkpoints>/<run path>/` (the operator's DST_RUN_PATH; else the run id)."""
        output = spec.get("output") or {}
        base = output.get("checkpoints") or (str(output.get("uri", "")).rstrip("/") + "/checkpoints/")
        uri = s3.parse_s3_uri(base, "spec.output.checkpoints").folder.child(run_path or run_id)
        return cls(storage, uri, local_dir, run_id, identity)

    @property
    def uri(self) -> str:
        return str(self.base)

    # ---- sync

    def sync(
        self,
        epochs_done: int | Callable[[str | None], int],
        local_best_loss: float | Mapping[str, float] | None = None,
    ) -> SyncResult:
        """Upload what the local state files reference (new files only), then state, run-state, latest.

        `epochs_done`: the count, or a function giving the whole epochs in a checkpoint (by prefix), so
        `latest` records the epochs of exactly the checkpoint uploaded.

        `local_best_loss`: dev loss of the local best_dev checkpoint, or the loss of each best_dev-N by
        prefix (a save whose loss line was not read yet is not in it). A restarted DeepSpeech overwrites
        best_dev with its first dev epoch even when worse (pitfall 13): the better one in S3 is kept, and
        the stored loss stays with the stored checkpoint.
        """
        with self._lock, s3.s3_errors(self.base, "spec.output.checkpoints"):
            return self._sync(epochs_done, local_best_loss)

    def _sync(
        self,
        epochs_done: int | Callable[[str | None], int],
        local_best_loss: float | Mapping[str, float] | None,
    ) -> SyncResult:
        count = epochs_done if callable(epochs_done) else (lambda _prefix: epochs_done)
        result = SyncResult(epochs_done=self.state.epochs_done)
        states: dict[str, str] = {}
        for name in STATE_FILES:
            try:
                states[name] = (self.local_dir / name).read_text(encoding="utf-8")
            except OSError:
                continue
        local_best = next(iter(local_prefixes(self.local_dir, "best_dev_checkpoint")), None)
        if isinstance(local_best_loss, Mapping):
            local_best_loss = local_best_loss.get(local_best) if local_best else None
        if "best_dev_checkpoint" in states and not self._take_local_best(local_best, local_best_loss):
            del states["best_dev_checkpoint"]
        uploads: list[tuple[Path, str]] = []
        complete: dict[str, str] = {}
        for name, text in states.items():
            prefixes = [PurePosixPath(p).name for p in state_paths(text)]
            files: list[Path] = []
            ok = bool(prefixes)
            for prefix in prefixes:
                found = checkpoint_files(self.local_dir, prefix)
                if not any(f.name.endswith(".index") for f in found):
                    ok = False  # saved state names a file being written or already deleted: next round
                    break
                files += found
            if not ok:
                continue
            complete[name] = text
            for f in files:
                try:
                    st = f.stat()
                except OSError:
                    continue
                if self._uploaded.get(f.name) != (st.st_size, st.st_mtime_ns):
                    uploads.append((f, f.name))
        if not complete:
            return result
        for extra in (FLAGS_TXT, ALPHABET_TXT):  # alphabet.txt: the run's labels, kept for a resume
            path = self.local_dir / extra
            if path.is_file():
                st = path.stat()
                if self._uploaded.get(extra) != (st.st_size, st.st_mtime_ns):
                    uploads.append((path, extra))
        vanished = self._upload_files(uploads)
        if vanished:
            # DeepSpeech deleted a file (max_to_keep) while we uploaded: that state file is stale now,
            # keep the store's previous one and catch up next round.
            prefixes = {m.group("prefix") for n in vanished if (m := _CKPT_FILE.match(n))}
            for name in list(complete):
                if prefixes & {PurePosixPath(p).name for p in state_paths(complete[name])}:
                    del complete[name]
            if not complete:
                return result
        result.uploaded = [n for _, n in uploads if n not in vanished]
        for name, text in complete.items():
            remote = rewrite_state(text, None)
            s3.put_bytes(self.storage, self.base.child(name), remote.encode(), "text/plain")
            self._remote_states[name] = remote
        if "checkpoint" in complete:
            named = [PurePosixPath(p).name for p in state_paths(complete["checkpoint"])]
            self.state.checkpoint = named[0]
            known = self.state.epochs_by_checkpoint
            self.state.epochs_by_checkpoint = {p: known.get(p, count(p)) for p in named}
        if "best_dev_checkpoint" in complete:
            best = PurePosixPath(state_paths(complete["best_dev_checkpoint"])[0]).name
            if best != self.state.best_dev or self.state.best_dev_loss is None:
                self.state.best_dev_loss = local_best_loss  # a new best_dev brings its own loss
            self.state.best_dev = best
        self.state.epochs_done = max(self.state.epochs_done, count(self.state.checkpoint))
        self.state.updated_at = time.time()
        body = json.dumps(self.state.to_json(), indent=2).encode()
        s3.put_bytes(self.storage, self.base.child(RUN_STATE), body, "application/json")
        s3.put_bytes(self.storage, self.base.child(LATEST), body, "application/json")
        self._prune()
        result.checkpoint = self.state.checkpoint
        result.epochs_done = self.state.epochs_done
        if result.uploaded:
            log.info(
                "checkpoint sync: %d file(s) to %s (newest %s, %d epoch(s) done)",
                len(result.uploaded),
                self.base,
                self.state.checkpoint,
                self.state.epochs_done,
            )
        return result

    def _take_local_best(self, local_best: str | None, local_best_loss: float | None) -> bool:
        if self.state.best_dev is None or self.state.best_dev_loss is None:
            return True
        if local_best == self.state.best_dev:
            return True
        if local_best_loss is None:
            return False  # cannot tell whether it is better: keep the known one
        return local_best_loss <= self.state.best_dev_loss

    def _upload_files(self, files: list[tuple[Path, str]]) -> set[str]:
        """Upload in parallel; returns the names that vanished locally before they could be read."""
        vanished: set[str] = set()
        futures = []
        stats = {}
        for path, name in files:
            try:
                st = path.stat()
            except FileNotFoundError:
                vanished.add(name)
                continue
            stats[name] = (st.st_size, st.st_mtime_ns)
            upload = self.storage.manager.upload(str(path), self.base.bucket, self.base.child(name).key)
            futures.append((name, upload))
        for name, fut in futures:
            try:
                fut.result()
            except FileNotFoundError:
                vanished.add(name)
                continue
            self._uploaded[name] = stats[name]
        return vanished

    def _remote_names(self) -> list[str]:
        return [
            obj["Key"][len(self.base.key) :]
            for obj in s3.list_objects(self.storage, self.base, delimiter="/")
        ]

    def _prune(self) -> None:
        keep = {PurePosixPath(p).name for text in self._remote_states.values() for p in state_paths(text)}
        stale = []
        for name in self._remote_names():
            m = _CKPT_FILE.match(name)
            if m and m.group("prefix") not in keep:
                stale.append(name)
        for i in range(0, len(stale), 1000):
            batch = stale[i : i + 1000]
            self.storage.client.delete_objects(
                Bucket=self.base.bucket,
                Delete={"Objects": [{"Key": self.base.child(n).key} for n in batch], "Quiet": True},
            )
        for name in stale:
            self._uploaded.pop(name, None)

    # ---- restore

    def read_state(self) -> RunState | None:
        """The `latest` marker, or None when this run has no complete checkpoint in the store."""
        with s3.s3_errors(self.base, "spec.output.checkpoints", user_data=False):
            if s3.head(self.storage, self.base.child(LATEST)) is None:
                return None
            data = json.loads(s3.get_bytes(self.storage, self.base.child(LATEST)))
        return RunState.from_json(data)

    def restore(self) -> RunState | None:
        """Download this run's checkpoint into `local_dir`, state files pointing at `local_dir`."""
        state = self.read_state()
        if state is None:
            return None
        check_identity(state.identity, self.identity, self.uri)
        state.identity = self.identity or state.identity
        self.local_dir.mkdir(parents=True, exist_ok=True)
        with s3.s3_errors(self.base, "spec.output.checkpoints", user_data=False):
            names = self._remote_names()
            wanted: list[str] = []
            for state_name in STATE_FILES:
                if state_name not in names:
                    continue
                text = s3.get_bytes(self.storage, self.base.child(state_name)).decode()
                named = [PurePosixPath(p).name for p in state_paths(text)]
                usable = complete_prefixes(named, names)
                if set(usable) != set(named):
                    log.warning(
                        "%s in %s names %s, but only %s are complete: using those",
                        state_name, self.base, named, usable or "none",
                    )  # fmt: skip
                    if state_name == "checkpoint":
                        state = _fell_back(state, usable)
                    elif state.best_dev not in usable:
                        state.best_dev, state.best_dev_loss = None, None
                    text = state_text(usable)
                if not usable:
                    continue
                for prefix in usable:
                    wanted += [n for n in names if n.startswith(prefix + ".")]
                self._remote_states[state_name] = rewrite_state(text, None)
                (self.local_dir / state_name).write_text(
                    rewrite_state(text, str(self.local_dir)), encoding="utf-8"
                )
            if state.checkpoint is None:
                log.warning("no complete checkpoint left in %s: the run starts from the beginning", self.base)
                return None
            wanted += [n for n in (FLAGS_TXT, ALPHABET_TXT) if n in names]
            futures = [
                (
                    n,
                    self.storage.manager.download(
                        self.base.bucket, self.base.child(n).key, str(self.local_dir / n)
                    ),
                )
                for n in dict.fromkeys(wanted)
            ]
            for n, fut in futures:
                fut.result()
                st = (self.local_dir / n).stat()
                self._uploaded[n] = (st.st_size, st.st_mtime_ns)
        self.state = state
        log.info(
            "restored checkpoint %s (%d epoch(s) done, best dev loss %s) from %s",
            state.checkpoint,
            state.epochs_done,
            state.best_dev_loss,
            self.base,
        )
        return state

    def restore_best_dev(self) -> bool:
        """Put the store's best_dev back locally when the local one is a worse, newer save."""
        if self.state.best_dev is None:
            return False
        if local_prefixes(self.local_dir, "best_dev_checkpoint")[:1] == [self.state.best_dev]:
            return False
        with s3.s3_errors(self.base, "spec.output.checkpoints", user_data=False):
            names = [n for n in self._remote_names() if n.startswith(self.state.best_dev + ".")]
            for n in names:
                self.storage.client.download_file(
                    self.base.bucket, self.base.child(n).key, str(self.local_dir / n)
                )
            text = s3.get_bytes(self.storage, self.base.child("best_dev_checkpoint")).decode()
        (self.local_dir / "best_dev_checkpoint").write_text(
            rewrite_state(text, str(self.local_dir)), encoding="utf-8"
        )
        log.info(
            "kept the better best_dev checkpoint %s (loss %s)", self.state.best_dev, self.state.best_dev_loss
        )
        return True


# --------------------------------------------------------------------------------------------- run identity

IDENTITY_ENV = {
    "namespace": "DST_NAMESPACE",
    "name": "DST_NAME",
    "uid": "DST_UID",
    "specHash": "DST_SPEC_HASH",
}


def run_identity(run_id: str, env: Mapping[str, str]) -> dict[str, str] | None:
    """The run's identity from the operator's environment (docs/contract.md); None off-cluster."""
    if not env.get("DST_UID"):
        return None
    return {"runId": run_id, **{key: env.get(var, "") for key, var in IDENTITY_ENV.items()}}


def _describe_identity(identity: Mapping[str, str]) -> str:
    return (
        f"run {identity.get('runId')} of DeepSpeechTraining {identity.get('namespace')}/"
        f"{identity.get('name')} (uid {identity.get('uid')}, spec hash {identity.get('specHash')})"
    )


def check_identity(recorded: Mapping[str, str] | None, mine: Mapping[str, str] | None, uri: str) -> None:
    """Refuse a checkpoint another run wrote: a CR deleted and created again under the same name, or two
    CRs sharing output.checkpoints, must never train on (and then publish) each other's weights. A store
    without a recorded identity (an older trainer, or local use) is restored as before."""
    if not recorded or not mine or dict(recorded) == dict(mine):
        return
    raise InvalidInput(
        f"checkpoint {uri} was written by {_describe_identity(recorded)}, not by this "
        f"{_describe_identity(mine)}: refusing to restore it. Point spec.output.checkpoints elsewhere "
        "or delete that folder."
    )


# --------------------------------------------------------------------------------------------- init checkpoint


@dataclass
class SourceCheckpoint:
    directory: Path
    load: str  # "best" (best_dev_checkpoint present) or "last"
    flags: dict[str, str]
    alphabet: list[str] | None


def _is_tarball(uri: str) -> bool:
    return uri.lower().endswith((".tar.gz", ".tgz"))


def safe_extract(
    tar_path: Path, dest: Path, field: str = "spec.initFrom.checkpoint", limits: ArchiveLimits | None = None
) -> None:
    """Extract a checkpoint tarball under the rules preflight applies too (deepspeech_trainer.archive)."""
    limits = limits or ArchiveLimits.for_work_dir(dest)
    archive.extract(tar_path, dest, ArchiveRules(limits, field))


def _find_checkpoint_dir(root: Path) -> Path | None:
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts)):
        if path.name in STATE_FILES and path.is_file():
            return path.parent
    return None


def fetch_init_checkpoint(storage: s3.Storage, uri: str, dest: Path, scratch: Path) -> SourceCheckpoint:
    """Fetch `initFrom.checkpoint` (S3 folder, S3 tarball or https tarball) into `dest`."""
    field = "spec.initFrom.checkpoint"
    if dest.exists():
        shutil.rmtree(dest)
    scratch.mkdir(parents=True, exist_ok=True)
    if _is_tarball(uri):
        tar_path = scratch / "init-checkpoint.tar.gz"
        limits = ArchiveLimits.for_work_dir(scratch)
        if uri.startswith("https://"):
            _download_https(uri, tar_path, limits)
        else:
            src = s3.parse_s3_uri(uri, field)
            with s3.s3_errors(uri, field):
                meta = s3.head(storage, src)
                if meta is not None:
                    _check_compressed_size(meta["ContentLength"], limits, f"{field}: {uri}")
                storage.manager.download(src.bucket, src.key, str(tar_path)).result()
        unpacked = scratch / "init-checkpoint"
        if unpacked.exists():
            shutil.rmtree(unpacked)
        safe_extract(tar_path, unpacked, f"{field}: {uri}", limits)
        found = _find_checkpoint_dir(unpacked)
        if found is None:
            raise InvalidInput(f"{field}: {uri} contains no 'checkpoint' or 'best_dev_checkpoint' state file")
        shutil.move(str(found), str(dest))
        tar_path.unlink(missing_ok=True)
    elif uri.startswith("s3://"):
        _download_folder(storage, s3.parse_s3_uri(uri, field).folder, dest, field)
    else:
        raise InvalidInput(f"{field}: {uri!r} must be an s3:// folder or tarball, or an https:// tarball")
    return _describe_local(dest, uri, field)


def _download_https(url: str, target: Path, limits: ArchiveLimits) -> None:
    field = "spec.initFrom.checkpoint"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp, target.open("wb") as out:
            written = 0
            while chunk := resp.read(1024 * 1024):
                written += len(chunk)
                _check_compressed_size(written, limits, f"{field}: {url}", so_far=True)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        err = InvalidInput if 400 <= exc.code < 500 else TransientError
        raise err(f"{field}: {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise TransientError(f"{field}: {url}: {exc}") from exc


def _download_folder(storage: s3.Storage, folder: s3.S3Uri, dest: Path, field: str) -> None:
    with s3.s3_errors(folder, field):
        names = [o["Key"][len(folder.key) :] for o in s3.list_objects(storage, folder, delimiter="/")]
        states = [n for n in STATE_FILES if n in names]
        if not states:
            raise InvalidInput(f"{field}: {folder} holds no 'checkpoint' or 'best_dev_checkpoint' state file")
        wanted: list[str] = []
        for state in states:
            text = s3.get_bytes(storage, folder.child(state)).decode()
            for prefix in (PurePosixPath(p).name for p in state_paths(text)):
                wanted += [n for n in names if n.startswith(prefix + ".")]
        wanted += states + [n for n in (FLAGS_TXT, ALPHABET_TXT) if n in names]
        dest.mkdir(parents=True, exist_ok=True)
        futures = [
            storage.manager.download(folder.bucket, folder.child(n).key, str(dest / n))
            for n in dict.fromkeys(wanted)
        ]
        for fut in futures:
            fut.result()


def _small_text(path: Path, uri: str, field: str) -> str | None:
    """flags.txt/alphabet.txt of a fetched checkpoint, under the size rule preflight applied."""
    if not path.is_file():
        return None
    problem = archive.text_file_problem(path.name, path.stat().st_size)
    if problem:
        raise InvalidInput(f"{field}: {uri}: {path.name} {problem}")
    return path.read_text(encoding="utf-8")


def _describe_local(directory: Path, uri: str, field: str) -> SourceCheckpoint:
    rewrite_local_state_files(directory)
    load = "best" if (directory / "best_dev_checkpoint").is_file() else "last"
    state = "best_dev_checkpoint" if load == "best" else "checkpoint"
    prefixes = local_prefixes(directory, state)
    if not prefixes or not (directory / f"{prefixes[0]}.index").is_file():
        raise InvalidInput(f"{field}: {uri}: {state} names {prefixes[:1]} but its .index file is missing")
    flags_txt = _small_text(directory / FLAGS_TXT, uri, field)
    flags = parse_flags_txt(flags_txt) if flags_txt is not None else {}
    alphabet_txt = _small_text(directory / ALPHABET_TXT, uri, field)
    alphabet = parse_alphabet(alphabet_txt, f"{uri} alphabet.txt") if alphabet_txt is not None else None
    log.info("init checkpoint %s: %s (load %s)", uri, prefixes[0], load)
    return SourceCheckpoint(directory, load, flags, alphabet)


# --------------------------------------------------------------------------------------------- preflight


@dataclass
class CheckpointFacts:
    """What preflight could learn about `initFrom.checkpoint` without fetching it whole."""

    flags: dict[str, str] = field(default_factory=dict)
    alphabet: list[str] | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def inspect_init_checkpoint(storage: s3.Storage, uri: str, limits: ArchiveLimits) -> CheckpointFacts:
    """Flags, alphabet and problems of the source checkpoint. An S3 tarball is streamed through whole
    (nothing is written) under the rules train extracts it with, so a tarball train would refuse
    fails here, before a GPU pod starts."""
    facts = CheckpointFacts()
    field = "spec.initFrom.checkpoint"
    try:
        if uri.startswith("https://"):
            _probe_https(uri, facts)
        elif _is_tarball(uri):
            src = s3.parse_s3_uri(uri, field)
            with s3.s3_errors(uri, field):
                meta = s3.head(storage, src)
                if meta is None:
                    facts.problems.append(
                        Problem(uri, 0, "checkpoint_missing", f"{field}: {uri} does not exist")
                    )
                else:
                    _check_compressed_size(meta["ContentLength"], limits, f"{field}: {uri}")
                    body = storage.client.get_object(Bucket=src.bucket, Key=src.key)["Body"]
                    _read_tar_facts(body, facts, uri, ArchiveRules(limits, f"{field}: {uri}"))
        else:
            folder = s3.parse_s3_uri(uri, field).folder
            with s3.s3_errors(uri, field):
                sizes = {
                    o["Key"][len(folder.key) :]: int(o["Size"])
                    for o in s3.list_objects(storage, folder, delimiter="/")
                }
                names = list(sizes)
                for name in (FLAGS_TXT, ALPHABET_TXT):
                    problem = archive.text_file_problem(name, sizes.get(name, 0))
                    if problem:
                        raise InvalidInput(f"{field}: {uri}: {name} {problem}")
                if not any(n in names for n in STATE_FILES):
                    facts.problems.append(
                        Problem(
                            uri, 0, "checkpoint_missing", f"{field}: no checkpoint state file under {folder}"
                        )
                    )
                    return facts
                if FLAGS_TXT in names:
                    facts.flags = parse_flags_txt(s3.get_bytes(storage, folder.child(FLAGS_TXT)).decode())
                if ALPHABET_TXT in names:
                    text = s3.get_bytes(storage, folder.child(ALPHABET_TXT)).decode()
                    facts.alphabet = parse_alphabet(text, f"{uri} alphabet.txt")
    except InvalidInput as exc:
        facts.problems.append(Problem(uri, 0, "checkpoint_unusable", str(exc)))
    return facts


def _probe_https(url: str, facts: CheckpointFacts) -> None:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
            size = resp.headers.get("Content-Length")
            facts.notes.append(
                f"initFrom.checkpoint {url} is reachable ({size or '?'} bytes); geometry unchecked"
            )
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410, 403, 401):
            facts.problems.append(
                Problem(url, 0, "checkpoint_missing", f"initFrom.checkpoint: HTTP {exc.code}")
            )
        else:
            facts.notes.append(f"initFrom.checkpoint {url}: unchecked (HTTP {exc.code})")
    except (urllib.error.URLError, OSError) as exc:
        facts.notes.append(
            f"initFrom.checkpoint {url}: unchecked, network not reachable from preflight ({exc})"
        )


def _check_compressed_size(size: int, limits: ArchiveLimits, where: str, *, so_far: bool = False) -> None:
    if size > limits.total:
        raise InvalidInput(
            f"{where}: the tarball is {'at least ' if so_far else ''}{archive.human(size)}, more than the "
            f"{archive.human(limits.total)} "
            "a checkpoint may take in the work dir (spec.resources.workDirSize)"
        )


def _read_tar_facts(body: Any, facts: CheckpointFacts, uri: str, rules: ArchiveRules) -> None:
    names: list[str] = []
    try:
        for tar, member in archive.members(body, rules):
            names.append(member.name)
            base = PurePosixPath(member.name).name
            if member.isfile() and base in (FLAGS_TXT, ALPHABET_TXT):
                text = archive.read_text_member(tar, member).decode("utf-8")
                if base == FLAGS_TXT:
                    facts.flags = parse_flags_txt(text)
                else:
                    facts.alphabet = parse_alphabet(text, f"{uri} alphabet.txt")
    except UnicodeDecodeError as exc:
        facts.problems.append(Problem(uri, 0, "checkpoint_unusable", f"not UTF-8 text in the tarball: {exc}"))
        return
    if not any(PurePosixPath(n).name in STATE_FILES for n in names):
        facts.problems.append(Problem(uri, 0, "checkpoint_missing", "tarball holds no checkpoint state file"))


def compatibility_problems(
    uri: str,
    flags: Mapping[str, str],
    alphabet: list[str] | None,
    spec: Mapping[str, Any],
    labels: Iterable[str],
) -> tuple[list[Problem], list[str]]:
    """n_hidden and output size of the source vs the spec (pitfall 21); notes for what cannot be told."""
    problems: list[Problem] = []
    notes: list[str] = []
    n_hidden = int((spec.get("training") or {}).get("nHidden", 2048))
    drop = int((spec.get("initFrom") or {}).get("dropSourceLayers", 0) or 0)
    if "n_hidden" in flags:
        try:
            src = int(flags["n_hidden"])
        except ValueError:
            src = None
        if src is not None and src != n_hidden:
            problems.append(
                Problem(
                    uri,
                    0,
                    "checkpoint_incompatible",
                    f"checkpoint was trained with --n_hidden {src}, spec.training.nHidden is {n_hidden}",
                )
            )
    else:
        notes.append("initFrom.checkpoint: no flags.txt seen; n_hidden not compared")
    ours = list(labels)
    if drop == 0:
        if alphabet is not None and len(alphabet) != len(ours):
            problems.append(
                Problem(
                    uri,
                    0,
                    "checkpoint_incompatible",
                    f"checkpoint alphabet has {len(alphabet)} labels, the run's has {len(ours)}: set "
                    "spec.initFrom.dropSourceLayers ≥ 1 or use the checkpoint's alphabet",
                )
            )
        elif alphabet is None:
            notes.append("initFrom.checkpoint: alphabet of the checkpoint unknown; output size not compared")
    return problems, notes
