"""Preflight's look at `spec.initFrom.checkpoint`: its flags, alphabet and problems, without fetching it.

Problems found here fail the run before a GPU pod starts; what cannot be told without the whole checkpoint
is left as a note.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from deepspeech_trainer import archive, s3
from deepspeech_trainer.alphabet import parse_alphabet
from deepspeech_trainer.archive import ArchiveLimits, ArchiveRules
from deepspeech_trainer.checkpoint_files import ALPHABET_TXT, FLAGS_TXT, parse_flags_txt
from deepspeech_trainer.csvdata import Problem
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.init_checkpoint import FIELD, HTTP_TIMEOUT_S, check_tarball_size, is_tarball
from deepspeech_trainer.tf_state_file import STATE_FILES


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
    try:
        if uri.startswith("https://"):
            _probe_https(uri, facts)
        elif is_tarball(uri):
            src = s3.parse_s3_uri(uri, FIELD)
            with s3.s3_errors(uri, FIELD):
                meta = s3.head(storage, src)
                if meta is None:
                    facts.problems.append(
                        Problem(uri, 0, "checkpoint_missing", f"{FIELD}: {uri} does not exist")
                    )
                else:
                    check_tarball_size(meta["ContentLength"], limits, f"{FIELD}: {uri}")
                    body = storage.client.get_object(Bucket=src.bucket, Key=src.key)["Body"]
                    _read_tar_facts(body, facts, uri, ArchiveRules(limits, f"{FIELD}: {uri}"))
        else:
            folder = s3.parse_s3_uri(uri, FIELD).folder
            with s3.s3_errors(uri, FIELD):
                sizes = {
                    o["Key"][len(folder.key) :]: int(o["Size"])
                    for o in s3.list_objects(storage, folder, delimiter="/")
                }
                names = list(sizes)
                for name in (FLAGS_TXT, ALPHABET_TXT):
                    problem = archive.text_file_problem(name, sizes.get(name, 0))
                    if problem:
                        raise InvalidInput(f"{FIELD}: {uri}: {name} {problem}")
                if not any(n in names for n in STATE_FILES):
                    facts.problems.append(
                        Problem(
                            uri, 0, "checkpoint_missing", f"{FIELD}: no checkpoint state file under {folder}"
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
    """n_hidden and output size of the source vs the spec; notes for what cannot be told. Either mismatch
    makes DeepSpeech fail only after the GPU pod started, on loading the checkpoint's tensors."""
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
