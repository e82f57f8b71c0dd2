"""Stage a spec's CSVs and their audio from S3 (the I/O shell around csvdata/audio).

Two modes:
- "full" (train): every referenced object is downloaded into a local cache that mirrors the bucket
  layout (`<cache>/<bucket>/<key>`); an index keyed by ETag+size makes a re-run with unchanged data
  cost one listing pass and no downloads. Headers are then read from the local files.
- "headers" (preflight): only the first 4 KiB of each object are fetched (ranged GET) — the CPU-only
  preflight pod validates a dataset of any size without holding a copy of it; cached files are read
  locally instead.

Objects are discovered by listing the folders the CSV rows point into (bounded to the key range the
rows need) rather than one HEAD per object: 1 request per 1 000 objects instead of 1 per object, and
the listing carries exactly what the cache needs (size, ETag).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import logging
import os
import posixpath
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import botocore.exceptions
from s3transfer.subscribers import BaseSubscriber

from deepspeech_trainer import s3, s3_small
from deepspeech_trainer.audio import HEADER_BYTES, WavHeaderError, WavInfo, parse_wav_header, read_wav_header
from deepspeech_trainer.csvdata import (
    Problem,
    Row,
    csv_file_lines,
    iter_csv,
    normalize_transcript,
    resolve_wav,
    write_csv,
)
from deepspeech_trainer.exitcodes import InvalidInput, TransientError

log = logging.getLogger(__name__)

Mode = Literal["full", "headers"]
SPLITS = ("train", "dev", "test")
INDEX_NAME = ".staging-index.json"
PROGRESS_EVERY_S = 2.0
# Below this size an object is fetched with one GetObject; above, s3transfer's multipart download.
SMALL_OBJECT = 8 * 1024 * 1024
# Enough requests in flight to hide per-request latency; more only adds GIL contention.
SMALL_WORKERS = 16
# Preflight streams its CSVs in chunks of this many rows (about 15 MB of rows, paths and listings).
STREAM_CHUNK_ROWS = 20_000
HEADER_MEMO_MAX = 200_000


@dataclass(frozen=True)
class ObjectMeta:
    size: int
    etag: str


@dataclass(slots=True)  # preflight holds a chunk of these, train every row
class StagedRow:
    line: int
    wav_filename: str  # as written in the CSV
    transcript: str  # NFC-normalised
    uri: s3.S3Uri | None = None  # resolved audio object
    local: Path | None = None  # local copy (full mode, or cached)
    size: int | None = None
    info: WavInfo | None = None
    problem: tuple[str, str] | None = None  # (code, message): path, missing file or unreadable header


@dataclass
class StagedCsv:
    split: str
    index: int
    uri: str
    field: str  # spec field naming this CSV, e.g. spec.data.train[0]
    rows: list[StagedRow] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)  # file-level and CSV-syntax problems


@dataclass
class StageStats:
    objects: int = 0
    downloaded: int = 0
    cached: int = 0
    header_reads: int = 0
    bytes: int = 0
    seconds: float = 0.0
    list_requests: int = 0

    def rate_mb_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass
class StageResult:
    csvs: list[StagedCsv]
    stats: StageStats

    @property
    def rows(self) -> int:
        return sum(len(c.rows) for c in self.csvs)

    def split(self, name: str) -> list[StagedCsv]:
        return [c for c in self.csvs if c.split == name]


# --------------------------------------------------------------------------------------------- cache index


class CacheIndex:
    """`bucket/key` → (size, ETag) of the local copy; a file counts as cached only if it also has that size."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / INDEX_NAME
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        try:
            self._entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._entries = {}  # no or unreadable index: everything is re-downloaded, nothing breaks

    def local_path(self, uri: s3.S3Uri) -> Path:
        """`<root>/<bucket>/<key>`, refused for keys that would not stay below root."""
        problem = s3.path_segment_problem(uri.key)
        if problem or uri.key.endswith("/"):
            raise InvalidInput(f"{uri}: {problem or 'is a folder, not an object'}; not cached")
        # One Path built from a string: pathlib's `/` twice per clip was a third of a warm start.
        return Path(f"{self.root}/{uri.bucket}/{uri.key}")

    def hit(self, uri: s3.S3Uri, meta: ObjectMeta) -> Path | None:
        entry = self._entries.get(f"{uri.bucket}/{uri.key}")
        if not entry or entry.get("etag") != meta.etag or entry.get("size") != meta.size:
            return None
        local = self.local_path(uri)
        try:
            if local.stat().st_size != meta.size:
                return None
        except OSError:
            return None
        return local

    def record(self, uri: s3.S3Uri, meta: ObjectMeta, info: WavInfo | None = None) -> None:
        entry: dict[str, Any] = {"etag": meta.etag, "size": meta.size}
        if info is not None:
            entry["wav"] = dataclasses.astuple(info)
        with self._lock:
            self._entries[f"{uri.bucket}/{uri.key}"] = entry
            self._dirty = True

    def header(self, uri: s3.S3Uri, meta: ObjectMeta) -> WavInfo | None:
        """The header parsed when the object was downloaded (the entry must match `meta`): a warm start
        then costs a stat per clip instead of opening and reading every one."""
        entry = self._entries.get(f"{uri.bucket}/{uri.key}")
        if not entry or entry.get("etag") != meta.etag or entry.get("size") != meta.size:
            return None
        fields = entry.get("wav")
        if not isinstance(fields, list) or len(fields) != len(dataclasses.fields(WavInfo)):
            return None
        try:
            return WavInfo(*(int(x) for x in fields))
        except (TypeError, ValueError):
            return None

    def save(self) -> None:
        if not self._dirty and self.path.exists():
            return  # nothing new (a warm start): rewriting every entry was a tenth of such a run
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with self._lock:
            tmp.write_text(json.dumps(self._entries), encoding="utf-8")
            self._dirty = False
        tmp.replace(self.path)


def cache_dir(work_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """`DST_CACHE_DIR` (e.g. a persistent volume) or `<work>/cache`."""
    env = os.environ if env is None else env
    return Path(env.get("DST_CACHE_DIR") or Path(work_dir) / "cache")


# --------------------------------------------------------------------------------------------- progress


class Progress:
    """Thread-safe counters logged at most every PROGRESS_EVERY_S seconds, plus a final line."""

    def __init__(self, what: str, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.total = total
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.cached = 0
        self.bytes = 0
        self._last = self.start
        self._lock = threading.Lock()

    def add(self, nbytes: int, cached: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.bytes += nbytes
            self.cached += cached
            now = self.clock()
            if now - self._last < PROGRESS_EVERY_S:
                return
            self._last = now
        log.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        return (
            f"{self.what}: {self.done}/{self.total} files ({self.cached} cached), "
            f"{self.bytes / 1e6:.1f} MB, {self.bytes / 1e6 / elapsed:.1f} MB/s, {self.done / elapsed:.0f} files/s"
        )


class _KnownObject(BaseSubscriber):
    """Hands s3transfer the size/ETag from our listing so it skips its own HEAD per object."""

    def __init__(self, meta: ObjectMeta, on_done: Callable[[Any], None]) -> None:
        self._meta = meta
        self._on_done = on_done

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._meta.size)
        future.meta.provide_object_etag(f'"{self._meta.etag}"')

    def on_done(self, future: Any, **kwargs: Any) -> None:
        self._on_done(future)


# --------------------------------------------------------------------------------------------- staging


def spec_csvs(spec: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    data = spec.get("data") or {}
    return [(split, i, uri) for split in SPLITS for i, uri in enumerate(data.get(split) or [])]


def stage(
    spec: Mapping[str, Any],
    storage: s3.Storage,
    work_dir: Path,
    *,
    mode: Mode = "full",
    cache_root: Path | None = None,
) -> StageResult:
    """Fetch and parse every CSV of the spec, find its audio, download it (full) or read its headers.

    Problems with the data are recorded, never raised; InvalidInput is raised only for a spec that
    names no valid location, TransientError for storage trouble.
    """
    started = time.monotonic()
    cache = CacheIndex(cache_root or cache_dir(work_dir))
    stats = StageStats()
    csvs = _fetch_csvs(spec, storage)
    wanted = _resolve_rows(csvs)
    present = _apply_listing(wanted, _list_objects(storage, wanted, stats))
    stats.objects = len(present)
    if mode == "full":
        _download(storage, present, wanted, cache, stats)
    else:
        _read_remote_headers(storage, present, wanted, cache, stats)
    stats.seconds = time.monotonic() - started
    log.info(
        "staged %d CSV(s), %d rows, %d audio objects: %d downloaded, %d cached, %d header reads, "
        "%.1f MB in %.1f s (%.1f MB/s), %d list requests",
        len(csvs),
        sum(len(c.rows) for c in csvs),
        stats.objects,
        stats.downloaded,
        stats.cached,
        stats.header_reads,
        stats.bytes / 1e6,
        stats.seconds,
        stats.rate_mb_s(),
        stats.list_requests,
    )
    return StageResult(csvs, stats)


def _apply_listing(
    wanted: Mapping[s3.S3Uri, list[StagedRow]], found: Mapping[s3.S3Uri, ObjectMeta]
) -> dict[s3.S3Uri, ObjectMeta]:
    """Sizes onto the rows, `file_missing` onto rows whose object is not there; the objects present."""
    for uri, rows in wanted.items():
        meta = found.get(uri)
        for row in rows:
            if meta is None:
                row.problem = ("file_missing", f"{uri} does not exist")
            else:
                row.size = meta.size
    return {uri: found[uri] for uri in wanted if uri in found}


def _csv_location(staged: StagedCsv) -> s3.S3Uri | None:
    """The CSV's object, or None after recording why it cannot be one (all CSVs still get checked)."""
    try:
        parsed = s3.parse_s3_uri(staged.uri, staged.field)
    except InvalidInput as exc:
        staged.problems.append(Problem(staged.uri, 0, "csv_uri", str(exc)))
        return None
    if not parsed.key.lower().endswith(".csv"):
        staged.problems.append(
            Problem(staged.uri, 0, "csv_uri", f"{staged.field}: only .csv files are supported")
        )
        return None
    return parsed


def _csv_items(fh: BinaryIO, uri: str) -> Iterator[Row | Problem]:
    pending: list[Problem] = []
    return iter_csv(csv_file_lines(fh, uri, pending), uri, pending=pending)


def _add_item(staged: StagedCsv, item: Row | Problem) -> None:
    if isinstance(item, Problem):
        staged.problems.append(item)
    else:
        staged.rows.append(StagedRow(item.line, item.wav_filename, normalize_transcript(item.transcript)))


def _fetch_csvs(spec: Mapping[str, Any], storage: s3.Storage) -> list[StagedCsv]:
    entries = spec_csvs(spec)
    out: list[StagedCsv] = []

    def fetch(entry: tuple[str, int, str]) -> StagedCsv:
        split, i, uri = entry
        field = f"spec.data.{split}[{i}]"
        staged = StagedCsv(split, i, uri, field)
        parsed = _csv_location(staged)
        if parsed is None:
            return staged
        try:
            with s3.s3_errors(uri, field):
                raw = s3.get_bytes(storage, parsed)
        except TransientError:
            raise
        except Exception as exc:  # InvalidInput: missing/forbidden CSV
            staged.problems.append(Problem(uri, 0, "csv_missing", str(exc)))
            return staged
        for item in _csv_items(io.BytesIO(raw), uri):
            _add_item(staged, item)
        return staged

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(entries)))) as pool:
        out = list(pool.map(fetch, entries))
    return out


def _resolve_rows(csvs: Iterable[StagedCsv]) -> dict[s3.S3Uri, list[StagedRow]]:
    wanted: dict[s3.S3Uri, list[StagedRow]] = defaultdict(list)
    for staged in csvs:
        if not staged.rows:
            continue
        csv_uri = s3.parse_s3_uri(staged.uri)
        for row in staged.rows:
            resolved = resolve_wav(csv_uri.key, row.wav_filename)
            if resolved.problem or resolved.key is None:
                row.problem = resolved.problem
                continue
            row.uri = s3.S3Uri(csv_uri.bucket, resolved.key)
            wanted[row.uri].append(row)
    return wanted


def _list_objects(
    storage: s3.Storage, wanted: Mapping[s3.S3Uri, list[StagedRow]], stats: StageStats
) -> dict[s3.S3Uri, ObjectMeta]:
    """Size and ETag of every wanted object that exists, by listing each folder once.

    Each folder is listed only over the key range the rows need (StartAfter just below the smallest
    key, stop after the largest), so a CSV using 100 clips of a million-clip folder stays cheap.
    """
    by_folder: dict[tuple[str, str], list[str]] = defaultdict(list)
    for uri in wanted:
        by_folder[(uri.bucket, posixpath.dirname(uri.key))].append(uri.key)
    found: dict[s3.S3Uri, ObjectMeta] = {}
    lock = threading.Lock()

    def list_folder(item: tuple[tuple[str, str], list[str]]) -> None:
        (bucket, folder), keys = item
        keys.sort()
        prefix = s3.S3Uri(bucket, folder + "/" if folder else "")
        needed = set(keys)
        local: dict[s3.S3Uri, ObjectMeta] = {}
        pages = 0
        with s3.s3_errors(prefix, "audio listing"):
            paginator = storage.client.get_paginator("list_objects_v2")
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix.key, "Delimiter": "/"}
            kwargs["StartAfter"] = keys[0][:-1]  # a proper prefix sorts before the key itself
            for page in paginator.paginate(**kwargs):
                pages += 1
                contents = page.get("Contents", [])
                for obj in contents:
                    if obj["Key"] in needed:
                        local[s3.S3Uri(bucket, obj["Key"])] = ObjectMeta(
                            int(obj["Size"]), s3.clean_etag(obj["ETag"])
                        )
                if not contents or contents[-1]["Key"] >= keys[-1]:
                    break
        with lock:
            found.update(local)
            stats.list_requests += pages

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(by_folder)))) as pool:
        list(pool.map(list_folder, by_folder.items()))
    return found


def _apply_header(rows: Iterable[StagedRow], read: Callable[[], WavInfo]) -> None:
    try:
        info = read()
    except WavHeaderError as exc:
        for row in rows:
            row.problem = (exc.code, str(exc))
        return
    for row in rows:
        row.info = info


def _download(
    storage: s3.Storage,
    present: Mapping[s3.S3Uri, ObjectMeta],
    wanted: Mapping[s3.S3Uri, list[StagedRow]],
    cache: CacheIndex,
    stats: StageStats,
) -> None:
    todo: list[tuple[s3.S3Uri, ObjectMeta]] = []
    progress = Progress("staging audio", len(present))
    headers: dict[s3.S3Uri, WavInfo | WavHeaderError] = {}
    locals_: dict[s3.S3Uri, Path] = {}
    for uri, meta in present.items():
        hit = cache.hit(uri, meta)
        if hit is not None:
            locals_[uri] = hit
            for row in wanted[uri]:
                row.local = hit
            known = cache.header(uri, meta)
            if known is not None:
                headers[uri] = known
            stats.cached += 1
            progress.add(0, cached=True)
        else:
            todo.append((uri, meta))
    errors: list[tuple[s3.S3Uri, BaseException]] = []
    err_lock = threading.Lock()
    made: set[Path] = set()
    for uri, _meta in todo:
        parent = cache.local_path(uri).parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)

    def done_cb(uri: s3.S3Uri, meta: ObjectMeta) -> Callable[[Any], None]:
        def done(future: Any) -> None:
            try:
                future.result()
            except BaseException as exc:  # collected and mapped once all transfers have ended
                with err_lock:
                    errors.append((uri, exc))
                return
            cache.record(uri, meta)
            progress.add(meta.size)

        return done

    small = [(u, m) for u, m in todo if m.size < SMALL_OBJECT]
    large = [(u, m) for u, m in todo if m.size >= SMALL_OBJECT]

    # Large objects: s3transfer (ranged multipart GETs, size/ETag from the listing so no HEAD).
    futures = [
        storage.manager.download(
            uri.bucket,
            uri.key,
            str(cache.local_path(uri)),
            subscribers=[_KnownObject(meta, done_cb(uri, meta))],
        )
        for uri, meta in large
    ]

    # Clips: one GetObject each on the shared client's pool. Measured on 5 000 × 100 KB files,
    # s3transfer's per-transfer futures/tasks/IO-queue cost about twice the CPU per small object,
    # which bounds throughput on a small pod; a clip fits in memory and is written atomically.
    def get_small(item: tuple[s3.S3Uri, ObjectMeta]) -> None:
        uri, meta = item
        target = cache.local_path(uri)
        try:
            body = s3_small.get_small(storage, uri, if_match=f'"{meta.etag}"')
            if len(body) != meta.size:
                raise TransientError(f"{uri}: got {len(body)} bytes, listing said {meta.size}")
            part = target.with_name(target.name + ".part")
            part.write_bytes(body)
            os.replace(part, target)
        except BaseException as exc:  # collected and mapped once all transfers have ended
            with err_lock:
                errors.append((uri, exc))
            return
        # Parsed from the bytes in hand, not by reopening the file afterwards, and kept in the index.
        info = _header_of(body, meta.size)
        headers[uri] = info
        cache.record(uri, meta, info if isinstance(info, WavInfo) else None)
        progress.add(meta.size)

    if small:
        with ThreadPoolExecutor(max_workers=min(SMALL_WORKERS, storage.concurrency)) as pool:
            list(pool.map(get_small, small))
    for fut in futures:
        with contextlib.suppress(BaseException):
            fut.result()
    cache.save()
    log.info("%s", progress.line())
    transient = []
    for uri, exc in errors:
        if isinstance(exc, botocore.exceptions.ClientError) and (
            s3.is_not_found(exc) or s3.error_code(exc) == "PreconditionFailed"
        ):
            for row in wanted[uri]:
                row.problem = ("file_missing", f"{uri} disappeared or changed while staging")
        else:
            transient.append((uri, exc))
    if transient:
        uri, exc = transient[0]
        raise TransientError(f"{len(transient)} download(s) failed, first {uri}: {exc}")
    stats.downloaded = len(todo) - len(errors)
    stats.bytes = sum(meta.size for _, meta in todo)
    for uri in present:
        rows = wanted[uri]
        if rows[0].problem is not None:
            continue
        local = locals_.get(uri) or cache.local_path(uri)
        for row in rows:
            row.local = local
        parsed = headers.get(uri)
        if parsed is None:
            _apply_header(rows, functools.partial(read_wav_header, local))
        elif isinstance(parsed, WavHeaderError):
            for row in rows:
                row.problem = (parsed.code, str(parsed))
        else:
            for row in rows:
                row.info = parsed


def _header_of(body: bytes, size: int) -> WavInfo | WavHeaderError:
    """What read_wav_header would say of a file holding `body` (the first 4 KiB, all of it for a
    header that runs longer)."""
    try:
        try:
            return parse_wav_header(body[:HEADER_BYTES], size)
        except WavHeaderError as exc:
            if exc.code != "wav_header_long":
                raise
            return parse_wav_header(body[: 16 * 1024 * 1024], size)
    except WavHeaderError as exc:
        return exc


def _read_remote_headers(
    storage: s3.Storage,
    present: Mapping[s3.S3Uri, ObjectMeta],
    wanted: Mapping[s3.S3Uri, list[StagedRow]],
    cache: CacheIndex,
    stats: StageStats,
    memo: HeaderMemo | None = None,
) -> None:
    progress = Progress("reading audio headers", len(present))
    lock = threading.Lock()

    def one(item: tuple[s3.S3Uri, ObjectMeta]) -> None:
        uri, meta = item
        rows = wanted[uri]
        hit = cache.hit(uri, meta)
        if hit is not None:
            _apply_header(rows, lambda: read_wav_header(hit))
            progress.add(0, cached=True)
            with lock:
                stats.cached += 1
            return
        if meta.size == 0:
            _apply_header(rows, lambda: parse_wav_header(b"", 0))
            progress.add(0)
            return
        with s3.s3_errors(uri, "audio"):
            head = s3_small.get_small(storage, uri, length=HEADER_BYTES)
            try:
                info = parse_wav_header(head, meta.size)
            except WavHeaderError as exc:
                if exc.code != "wav_header_long":
                    raise
                head = s3_small.get_small(storage, uri, length=min(meta.size, 16 * 1024 * 1024))
                info = parse_wav_header(head, meta.size)
        for row in rows:
            row.info = info
        if memo is not None:
            memo.put(uri, meta, info)
        progress.add(len(head))
        with lock:
            stats.header_reads += 1
            stats.bytes += len(head)

    def guarded(item: tuple[s3.S3Uri, ObjectMeta]) -> None:
        try:
            one(item)
        except WavHeaderError as exc:
            for row in wanted[item[0]]:
                row.problem = (exc.code, str(exc))
        except Exception as exc:
            if isinstance(exc.__cause__, botocore.exceptions.ClientError) and s3.is_not_found(exc.__cause__):
                for row in wanted[item[0]]:
                    row.problem = ("file_missing", f"{item[0]} disappeared while staging")
                return
            raise

    # Objects whose header this run already read are settled here: a pool task each would cost more
    # than the lookup (later chunks of a CSV that repeats its clips are nearly all such).
    todo = []
    for uri, meta in present.items():
        known = memo.get(uri, meta) if memo is not None else None
        if known is None:
            todo.append((uri, meta))
            continue
        for row in wanted[uri]:
            row.info = known
        progress.add(0, cached=True)
    # As for clips: beyond ~16 threads, requests contend for the pool instead of overlapping latency.
    if todo:
        with ThreadPoolExecutor(max_workers=min(SMALL_WORKERS, storage.concurrency)) as pool:
            list(pool.map(guarded, todo))
    log.info("%s", progress.line())


# --------------------------------------------------------------------------------------------- streamed headers


class HeaderMemo:
    """Objects whose header was already read in this run (listing facts and header), so rows sharing
    an object across chunks cost neither a listing page nor a GET; bounded (cleared when full), as
    everything preflight keeps between chunks."""

    def __init__(self, capacity: int = HEADER_MEMO_MAX) -> None:
        self.capacity = capacity
        self._known: dict[s3.S3Uri, tuple[ObjectMeta, WavInfo]] = {}
        self._lock = threading.Lock()

    def meta(self, uri: s3.S3Uri) -> ObjectMeta | None:
        known = self._known.get(uri)
        return known[0] if known is not None else None

    def get(self, uri: s3.S3Uri, meta: ObjectMeta) -> WavInfo | None:
        known = self._known.get(uri)
        return known[1] if known is not None and known[0] == meta else None

    def put(self, uri: s3.S3Uri, meta: ObjectMeta, info: WavInfo) -> None:
        with self._lock:
            if len(self._known) >= self.capacity:
                self._known.clear()
            self._known[uri] = (meta, info)


def stream_headers(
    spec: Mapping[str, Any],
    storage: s3.Storage,
    work_dir: Path,
    stats: StageStats,
    *,
    chunk_rows: int = STREAM_CHUNK_ROWS,
    cache_root: Path | None = None,
) -> Iterator[StagedCsv]:
    """Headers mode, streamed: every CSV of the spec as chunks of at most `chunk_rows` rows (and
    problems), each resolved, listed and header-read before the next one is parsed.

    Memory is bounded by the chunk size, not by the CSV: the CSV is downloaded to the work dir and
    read a line at a time. Every CSV yields at least one chunk (possibly empty) with its split and
    index. Listing per chunk costs at most (objects in the listed key range) / 1 000 requests beside
    the chunk's header reads, so a shuffled CSV over a large folder pays some listing more than once.
    """
    started = time.monotonic()
    cache = CacheIndex(cache_root or cache_dir(work_dir))
    memo = HeaderMemo()
    scratch = Path(work_dir) / "csv-download"
    rows = 0
    for split, i, uri in spec_csvs(spec):
        staged = StagedCsv(split, i, uri, f"spec.data.{split}[{i}]")
        parsed = _csv_location(staged)
        if parsed is None:
            yield staged
            continue
        scratch.mkdir(parents=True, exist_ok=True)
        local = scratch / f"{split}-{i}.csv"
        try:
            try:
                with s3.s3_errors(uri, staged.field), local.open("wb") as out:
                    # One streamed GET: s3transfer's parallel parts would buffer tens of MB.
                    body = storage.client.get_object(Bucket=parsed.bucket, Key=parsed.key)["Body"]
                    shutil.copyfileobj(body, out, 1024 * 1024)
            except InvalidInput as exc:  # missing/forbidden CSV; TransientError propagates
                staged.problems.append(Problem(uri, 0, "csv_missing", str(exc)))
                yield staged
                continue
            with local.open("rb") as fh:
                for item in _csv_items(fh, uri):
                    _add_item(staged, item)
                    if len(staged.rows) + len(staged.problems) >= chunk_rows:
                        rows += len(staged.rows)
                        _headers_of_chunk(storage, staged, cache, memo, stats)
                        yield staged
                        staged = StagedCsv(split, i, uri, staged.field)
            rows += len(staged.rows)
            _headers_of_chunk(storage, staged, cache, memo, stats)
            yield staged
        finally:
            local.unlink(missing_ok=True)
    stats.seconds = time.monotonic() - started
    log.info(
        "checked %d rows: %d audio objects, %d header reads, %d cached, %.1f MB in %.1f s, %d list requests",
        rows,
        stats.objects,
        stats.header_reads,
        stats.cached,
        stats.bytes / 1e6,
        stats.seconds,
        stats.list_requests,
    )


def _headers_of_chunk(
    storage: s3.Storage, staged: StagedCsv, cache: CacheIndex, memo: HeaderMemo, stats: StageStats
) -> None:
    wanted = _resolve_rows([staged])
    known = {uri: meta for uri in wanted if (meta := memo.meta(uri)) is not None}
    unknown = {uri: rows for uri, rows in wanted.items() if uri not in known}
    present = _apply_listing(wanted, _list_objects(storage, unknown, stats) | known)
    stats.objects += len(present) - len(known)  # distinct objects, as far as the memo remembers
    _read_remote_headers(storage, present, wanted, cache, stats, memo)


# --------------------------------------------------------------------------------------------- output


def write_staged_csvs(
    result: StageResult, targets: Mapping[tuple[str, int], Path]
) -> dict[tuple[str, int], int]:
    """Write each staged CSV to its target path with absolute local paths and real file sizes.

    Rows with a problem are left out (train refuses to start while there are any, so this only
    matters to callers that choose to go on). Returns the row count per CSV.
    """
    counts: dict[tuple[str, int], int] = {}
    for staged in result.csvs:
        target = targets[(staged.split, staged.index)]
        target.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            (str(row.local), row.local.stat().st_size, row.transcript)
            for row in staged.rows
            if row.problem is None and row.local is not None
        ]
        counts[(staged.split, staged.index)] = write_csv(target, rows)
    return counts
