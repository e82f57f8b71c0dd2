"""The run's own checkpoint store in S3: sync while training, prune, and restore on start.

Layout under `<output.checkpoints>/<run path>/`: the `train-N`/`best_dev-N` files the state files
reference, the state files `checkpoint` and `best_dev_checkpoint` (paths as basenames, so any pod can
use them), `flags.txt`, `alphabet.txt`, `run-state.json` and, written last, `latest`. A reader that finds
`latest` therefore finds a complete set: data files go up before the state file that references them, as
a state file naming files not yet uploaded would make a resume load a checkpoint that is not there; and
files no state file references are never uploaded and are pruned remotely.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepspeech_trainer import s3
from deepspeech_trainer.checkpoint_files import (
    ALPHABET_TXT,
    CHECKPOINT_FILE,
    FLAGS_TXT,
    complete_prefixes,
    local_checkpoint_files,
)
from deepspeech_trainer.run_identity import check_identity
from deepspeech_trainer.spec import checkpoints_uri
from deepspeech_trainer.tf_state_file import (
    BEST_DEV_STATE,
    STATE_FILES,
    TRAIN_STATE,
    read_prefixes,
    rewrite_state,
    state_prefixes,
    state_text,
    write_local_state,
)

log = logging.getLogger(__name__)

RUN_STATE = "run-state.json"
LATEST = "latest"
FIELD = "spec.output.checkpoints"


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


def _fell_back(state: RunState, usable: list[str]) -> RunState:
    """The run state of the newest complete checkpoint, when the newest one named is not complete."""
    if not usable:
        state.checkpoint, state.epochs_done = None, 0
        return state
    state.checkpoint = usable[0]
    state.epochs_done = state.epochs_by_checkpoint.get(usable[0], 0)
    return state


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
        uri = s3.parse_s3_uri(checkpoints_uri(spec.get("output") or {}), FIELD).folder.child(
            run_path or run_id
        )
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
        best_dev with its first dev epoch even when worse, as it forgets the best loss on restart: the
        better one in S3 is kept, and the stored loss stays with the stored checkpoint.
        """
        with self._lock, s3.s3_errors(self.base, FIELD):
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
        local_best = next(iter(read_prefixes(self.local_dir, BEST_DEV_STATE)), None)
        if isinstance(local_best_loss, Mapping):
            local_best_loss = local_best_loss.get(local_best) if local_best else None
        if BEST_DEV_STATE in states and not self._take_local_best(local_best, local_best_loss):
            del states[BEST_DEV_STATE]
        uploads: list[tuple[Path, str]] = []
        complete: dict[str, str] = {}
        for name, text in states.items():
            prefixes = state_prefixes(text)
            files: list[Path] = []
            ok = bool(prefixes)
            for prefix in prefixes:
                found = local_checkpoint_files(self.local_dir, prefix)
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
            gone = {m.group("prefix") for n in vanished if (m := CHECKPOINT_FILE.match(n))}
            for name in list(complete):
                if gone & set(state_prefixes(complete[name])):
                    del complete[name]
            if not complete:
                return result
        result.uploaded = [n for _, n in uploads if n not in vanished]
        for name, text in complete.items():
            remote = rewrite_state(text, None)
            s3.put_bytes(self.storage, self.base.child(name), remote.encode(), "text/plain")
            self._remote_states[name] = remote
        if TRAIN_STATE in complete:
            named = state_prefixes(complete[TRAIN_STATE])
            self.state.checkpoint = named[0]
            known = self.state.epochs_by_checkpoint
            self.state.epochs_by_checkpoint = {p: known.get(p, count(p)) for p in named}
        if BEST_DEV_STATE in complete:
            best = state_prefixes(complete[BEST_DEV_STATE])[0]
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
        keep = {p for text in self._remote_states.values() for p in state_prefixes(text)}
        stale = []
        for name in self._remote_names():
            m = CHECKPOINT_FILE.match(name)
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
        with s3.s3_errors(self.base, FIELD, user_data=False):
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
        with s3.s3_errors(self.base, FIELD, user_data=False):
            names = self._remote_names()
            wanted: list[str] = []
            for state_name in STATE_FILES:
                if state_name not in names:
                    continue
                text = s3.get_bytes(self.storage, self.base.child(state_name)).decode()
                named = state_prefixes(text)
                usable = complete_prefixes(named, names)
                if set(usable) != set(named):
                    log.warning(
                        "%s in %s names %s, but only %s are complete: using those",
                        state_name, self.base, named, usable or "none",
                    )  # fmt: skip
                    if state_name == TRAIN_STATE:
                        state = _fell_back(state, usable)
                    elif state.best_dev not in usable:
                        state.best_dev, state.best_dev_loss = None, None
                    text = state_text(usable)
                if not usable:
                    continue
                for prefix in usable:
                    wanted += [n for n in names if n.startswith(prefix + ".")]
                self._remote_states[state_name] = rewrite_state(text, None)
                write_local_state(self.local_dir, state_name, text)
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
        if read_prefixes(self.local_dir, BEST_DEV_STATE)[:1] == [self.state.best_dev]:
            return False
        with s3.s3_errors(self.base, FIELD, user_data=False):
            names = [n for n in self._remote_names() if n.startswith(self.state.best_dev + ".")]
            for n in names:
                self.storage.client.download_file(
                    self.base.bucket, self.base.child(n).key, str(self.local_dir / n)
                )
            text = s3.get_bytes(self.storage, self.base.child(BEST_DEV_STATE)).decode()
        write_local_state(self.local_dir, BEST_DEV_STATE, text)
        log.info(
            "kept the better best_dev checkpoint %s (loss %s)", self.state.best_dev, self.state.best_dev_loss
        )
        return True
