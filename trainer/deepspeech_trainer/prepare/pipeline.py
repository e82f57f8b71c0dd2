"""The I/O shell of `prepare`: list, parse, normalise, convert (resumable), split, write, validate, upload.

Every decision is delegated to the pure modules; this file only moves data between them, the disk and
S3, and keeps the promise that nothing is lost: each row either lands in a CSV or in dropped.csv.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from deepspeech_trainer import s3
from deepspeech_trainer.alphabet import derive_alphabet, format_alphabet, parse_alphabet
from deepspeech_trainer.audio import feature_frames, read_wav_header, required_frames, window_problems
from deepspeech_trainer.exitcodes import InvalidInput

from . import layouts, outputs
from .convert import AudioError, convert
from .journal import Entry, Journal, entry_key
from .model import SPLITS, Clip, Drop, Item, Layout, Row
from .progress import Progress
from .sources import LocalSource, S3Source, Source
from .split import assign, group_key
from .text import ENGLISH_ALPHABET, Policy, apply_policy, extend_alphabet

ItemHook = Callable[[int], None]


class Interrupted(Exception):
    """Ctrl-C during a stage; everything finished so far is kept and a re-run continues from it."""

    exit_code = 130


@dataclass
class Options:
    source: str
    dest: str
    layout: Layout | None = None
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    alphabet: str | None = None
    policy: Policy | None = None
    lowercase: bool = True
    sample_rate: int = 16000
    manifest: str | None = None
    columns: layouts.ManifestColumns = field(default_factory=layouts.ManifestColumns)
    max_seconds: float = 0.0
    jobs: int = 2
    work_dir: Path | None = None
    name: str | None = None
    output_uri: str | None = None
    secret: str = "s3-credentials"
    progress_bar: bool | None = None


@dataclass
class Result:
    dest_dir: Path
    summary: dict[str, Any]
    rows: list[Row]
    drops: list[Drop]
    converted: int = 0
    reused: int = 0
    uploaded: int = 0
    upload_skipped: int = 0
    snippet: str = ""
    validation: dict[str, Any] = field(default_factory=dict)


def _is_s3(location: str) -> bool:
    return location.startswith("s3://")


def _staging_dir(dest: s3.S3Uri, work_dir: Path | None) -> Path:
    base = work_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deepspeech-prepare"
    return base / dest.bucket / dest.key.strip("/")


def _read_alphabet(location: str, storage: s3.Storage | None) -> list[str]:
    if _is_s3(location):
        assert storage is not None
        uri = s3.parse_s3_uri(location, "--alphabet")
        with s3.s3_errors(uri, "--alphabet"):
            raw = s3.get_bytes(storage, uri)
    else:
        try:
            raw = Path(location).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"--alphabet {location}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"--alphabet {location}: not UTF-8 at byte {exc.start}") from None
    return parse_alphabet(text, location)


def collect(source: Source, names: dict[str, str], opts: Options) -> tuple[Layout, list[Item], list[Drop]]:
    """Items and drops of the layout (detected unless given), one row per audio file."""
    layout = opts.layout or layouts.detect_layout(names)
    items: list[Item] = []
    drops: list[Drop] = []
    if layout is Layout.PAIRS:
        pairs, drops = layouts.match_pairs(names)
        with ThreadPoolExecutor(max_workers=8) as pool:  # S3 GETs are latency-bound
            texts = list(pool.map(lambda p: source.read_text(p[1]), pairs))
        items = [layouts.pair_item(a, t, text) for (a, t), text in zip(pairs, texts, strict=True)]
    elif layout is Layout.MANIFEST:
        manifest = layouts.choose_manifest(names, opts.manifest)
        items, drops = layouts.parse_manifest(source.read_text(manifest), manifest, names, opts.columns)
    else:
        files = layouts.librispeech_files(names)
        if not files:
            raise InvalidInput(f"layout librispeech: no *{layouts.LIBRISPEECH_SUFFIX} in SOURCE")
        for name in files:
            got, lost = layouts.parse_librispeech(source.read_text(name), name, names)
            items += got
            drops += lost
    items, dups = layouts.dedupe(items)
    return layout, items, drops + dups


def convert_all(
    source: Source,
    names: dict[str, str],
    todo: list[tuple[Item, str]],
    dest: Path,
    opts: Options,
    err: IO[str],
    on_item: ItemHook | None = None,
) -> tuple[dict[str, Entry], int, int]:
    """Convert every (item, wav name) not already in the journal; returns entries, converted, reused."""
    journal = Journal(dest)
    entries: dict[str, Entry] = {}
    pending: list[tuple[Item, str, str]] = []
    for item, wav in todo:
        key = entry_key(names[item.audio], opts.sample_rate)
        done = journal.done(item.audio, key, dest)
        if done is not None and (done.reason or done.wav == wav):
            entries[item.audio] = done
        else:
            pending.append((item, wav, key))
    reused = len(entries)
    progress = Progress("convert", len(todo), stream=err, bar=opts.progress_bar)
    for _ in range(reused):
        progress.advance(skipped=True)

    def work(item: Item, wav: str, key: str) -> Entry:
        try:
            with source.local(item.audio) as path:
                c = convert(path, dest / wav, opts.sample_rate)
        except AudioError as exc:
            return Entry(item.audio, key, reason=exc.reason, detail=str(exc))
        return Entry(item.audio, key, wav, c.size, c.n_samples, c.sample_rate)

    converted = 0
    pool = ThreadPoolExecutor(max_workers=max(1, opts.jobs))
    queue = iter(pending)
    running: set[Future[Entry]] = set()

    def fill() -> None:
        # Bounded queue: an interrupt then leaves at most `jobs` files in flight, not the whole list.
        while len(running) < 2 * max(1, opts.jobs):
            nxt = next(queue, None)
            if nxt is None:
                return
            running.add(pool.submit(work, *nxt))

    try:
        fill()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                running.discard(future)
                entry = future.result()
                journal.record(entry)
                entries[entry.audio] = entry
                converted += 1
                progress.advance()
                if on_item is not None:
                    on_item(converted)
            fill()
    except KeyboardInterrupt:
        # Let the few files in flight finish and journal them: their work is not thrown away.
        for future in running:
            try:
                entry = future.result()
            except Exception:  # a failure here is simply redone by the next run
                continue
            journal.record(entry)
            converted += 1
        raise Interrupted(
            f"interrupted after converting {converted} file(s) "
            f"({reused + converted} of {len(todo)} done); run the same command again to finish the rest"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()
        journal.close()
    return entries, converted, reused


def clip_checks(item: Item, text: str, entry: Entry, opts: Options) -> Drop | None:
    """CTC length (audio.required_frames, the rule the trainer applies) and the optional duration cap."""
    frames = feature_frames(entry.n_samples, entry.sample_rate)
    need = required_frames(text)
    seconds = entry.n_samples / entry.sample_rate
    if frames < need:
        return Drop(
            item.origin,
            item.audio,
            "too_short",
            f"{seconds:.2f} s gives {frames} feature frames, the transcript needs {need}",
        )
    if opts.max_seconds and seconds > opts.max_seconds:
        return Drop(
            item.origin, item.audio, "too_long", f"{seconds:.2f} s > --max-seconds {opts.max_seconds:g}"
        )
    return None


def _write_text(path: Path, text: str) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(text, encoding="utf-8", newline="")
    os.replace(part, path)


def write_outputs(
    dest: Path,
    rows: list[Row],
    drops: list[Drop],
    labels: list[str],
    summary: dict[str, Any],
    ratios: Iterable[float],
) -> list[str]:
    """The CSVs (splits with ratio 0 are not written), alphabet, dropped.csv, summary.json."""
    from deepspeech_trainer.csvdata import write_csv

    written: list[str] = []
    for split, ratio in zip(SPLITS, ratios, strict=True):
        path = dest / outputs.csv_name(split)
        if ratio > 0:
            write_csv(path, outputs.csv_rows(rows, split))
            written.append(path.name)
        else:
            path.unlink(missing_ok=True)  # stale from a run with another --split
    _write_text(dest / outputs.ALPHABET_FILE, format_alphabet(labels))
    part = dest / (outputs.DROPPED_FILE + ".part")
    with part.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("origin", "audio", "reason", "detail"))
        writer.writerows(outputs.drops_rows(drops))
    os.replace(part, dest / outputs.DROPPED_FILE)
    _write_text(dest / outputs.SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return [*written, outputs.ALPHABET_FILE, outputs.DROPPED_FILE, outputs.SUMMARY_FILE]


def validate_result(dest: Path, csv_files: list[str], labels: list[str], sample_rate: int) -> Any:
    """The preflight checks (deepspeech_trainer.validation) over the written CSVs and WAVs."""
    from deepspeech_trainer.audio import WavHeaderError
    from deepspeech_trainer.csvdata import normalize_transcript, parse_csv, resolve_wav
    from deepspeech_trainer.staging import StagedCsv, StagedRow
    from deepspeech_trainer.validation import Settings, validate

    staged: list[StagedCsv] = []
    for name in csv_files:
        split = name.removesuffix(".csv")
        table = parse_csv((dest / name).read_text(encoding="utf-8"), name)
        sc = StagedCsv(split, 0, name, f"prepare {name}", problems=list(table.problems))
        for row in table.rows:
            sr = StagedRow(row.line, row.wav_filename, normalize_transcript(row.transcript))
            resolved = resolve_wav(name, row.wav_filename)
            if resolved.key is None:
                sr.problem = resolved.problem
            else:
                sr.local = dest / resolved.key
                try:
                    sr.size = sr.local.stat().st_size
                    sr.info = read_wav_header(sr.local)
                except FileNotFoundError:
                    sr.problem = ("audio_missing", f"{row.wav_filename} does not exist")
                except WavHeaderError as exc:
                    sr.problem = (exc.code, str(exc))
            sc.rows.append(sr)
        staged.append(sc)
    return validate(staged, Settings(sample_rate=sample_rate), alphabet=labels, alphabet_source="prepare")


def run(
    opts: Options, out: IO[str] | None = None, err: IO[str] | None = None, on_item: ItemHook | None = None
) -> Result:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    problems = window_problems(opts.sample_rate)
    if problems:
        raise InvalidInput(
            f"--sample-rate {opts.sample_rate}: {problems[0]} (use 8000, 16000, 32000 or 48000)"
        )
    storage: s3.Storage | None = None
    if _is_s3(opts.source) or _is_s3(opts.dest) or (opts.alphabet and _is_s3(opts.alphabet)):
        storage = s3.Storage(s3.StorageConfig.from_spec({}))
    try:
        return _run(opts, storage, out, err, on_item)
    finally:
        if storage is not None:
            storage.close()


def _run(
    opts: Options, storage: s3.Storage | None, out: IO[str], err: IO[str], on_item: ItemHook | None
) -> Result:
    dest_uri = s3.parse_s3_uri(opts.dest, "DEST") if _is_s3(opts.dest) else None
    dest = _staging_dir(dest_uri, opts.work_dir) if dest_uri else Path(opts.dest)
    dest.mkdir(parents=True, exist_ok=True)
    source: Source
    if _is_s3(opts.source):
        assert storage is not None
        source = S3Source(storage, s3.parse_s3_uri(opts.source, "SOURCE"), dest / ".prepare-source")
    else:
        source = LocalSource(Path(opts.source), exclude=dest)
    names = source.list()
    layout, items, drops = collect(source, names, opts)
    print(
        f"prepare: {source.description}: layout {layout}, {len(items)} rows, {len(drops)} dropped so far",
        file=err,
    )

    given = _read_alphabet(opts.alphabet, storage) if opts.alphabet else None
    policy = opts.policy or (Policy.MAP if given else Policy.KEEP)
    if given is None and policy is not Policy.KEEP:
        given = list(ENGLISH_ALPHABET)  # map/drop need a target: the release checkpoints' alphabet
    alphabet_source = (opts.alphabet or "english-release") if given else "derived"
    check = frozenset(given) if given else None

    kept: list[tuple[Item, str]] = []
    for item in items:
        outcome = apply_policy(item.transcript, check, policy, opts.lowercase)
        if outcome.text is None:
            drops.append(Drop(item.origin, item.audio, outcome.reason, outcome.detail))
        else:
            kept.append((item, outcome.text))

    wavs = outputs.wav_names(item.audio for item, _ in kept)
    entries, converted, reused = convert_all(
        source, names, [(item, wavs[item.audio]) for item, _ in kept], dest, opts, err, on_item
    )

    usable: list[tuple[Item, str, Clip]] = []
    for item, text in kept:
        entry = entries[item.audio]
        if entry.reason:
            drops.append(Drop(item.origin, item.audio, entry.reason, entry.detail))
            continue
        lost = clip_checks(item, text, entry, opts)
        if lost is not None:
            drops.append(lost)
            continue
        usable.append((item, text, Clip(entry.wav, entry.size, entry.n_samples, entry.sample_rate)))

    groups: dict[str, int] = {}
    for item, _, _ in usable:
        key = group_key(item.audio, item.speaker)
        groups[key] = groups.get(key, 0) + 1
    splits = assign(groups, opts.ratios, opts.seed)
    rows = [Row(item, text, clip, splits[group_key(item.audio, item.speaker)]) for item, text, clip in usable]

    texts = [r.transcript for r in rows]
    added: list[str] = []
    if given is None:
        labels = derive_alphabet(texts)
    elif policy is Policy.KEEP:
        labels, added = extend_alphabet(given, texts)
    else:
        labels = list(given)

    summary = outputs.summarise(
        rows,
        drops,
        layout=layout.value,
        sample_rate=opts.sample_rate,
        alphabet_size=len(labels),
        alphabet_source=alphabet_source,
        alphabet_added=added,
    )
    files = write_outputs(dest, rows, drops, labels, summary, opts.ratios)
    csv_files = [f for f in files if f.endswith(".csv") and f != outputs.DROPPED_FILE]
    result = Result(dest, summary, rows, drops, converted, reused)

    for d in drops[:20]:
        print(f"dropped {d.origin} {d.audio}: {d.reason}: {d.detail}", file=err)
    if len(drops) > 20:
        print(f"... {len(drops) - 20} more dropped rows in {dest / outputs.DROPPED_FILE}", file=err)

    report = validate_result(dest, csv_files, labels, opts.sample_rate)
    result.validation = report.to_json()
    summary["validation"] = {"ok": report.ok, "problemCount": report.problem_count, "notes": report.notes}
    _write_text(dest / outputs.SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(outputs.summary_text(summary), end="", file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    if not report.ok:
        listed = "\n".join(f"  {p.file}:{p.line}: {p.code}: {p.message}" for p in report.problems[:20])
        raise InvalidInput(
            f"the prepared data fails preflight validation ({report.problem_count} problem(s)); "
            f"nothing uploaded:\n{listed}"
        )

    if dest_uri is not None:
        assert storage is not None
        from .upload import upload

        audio = sorted({r.clip.wav for r in rows})
        progress = Progress("upload", len(audio) + len(files), stream=err, bar=opts.progress_bar)
        try:
            stats = upload(storage, dest, [audio, files], dest_uri, lambda skipped: progress.advance(skipped))
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted during upload; run the same command again to upload the rest"
            ) from None
        finally:
            progress.close()
        result.uploaded, result.upload_skipped = stats.uploaded, stats.skipped
        print(
            f"uploaded {stats.uploaded} file(s) ({stats.bytes / 1e6:.1f} MB), {stats.skipped} unchanged",
            file=out,
        )
        name = opts.name or outputs.resource_name(opts.dest)
        result.snippet = outputs.snippet(
            str(dest_uri.folder),
            name=name,
            output_uri=opts.output_uri or f"s3://{dest_uri.bucket}/models/{name}/",
            endpoint=storage.config.endpoint,
            region=storage.config.region,
            secret=opts.secret,
            splits_present=[s for s, r in zip(SPLITS, opts.ratios, strict=True) if r > 0],
        )
        print("\n# Ready to apply (kubectl apply -f -):\n---", file=out)
        print(result.snippet, end="", file=out)
    else:
        print(f"wrote {', '.join(files)} and {len(rows)} WAVs under {dest}", file=out)
    return result
