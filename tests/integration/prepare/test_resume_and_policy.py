"""Interruption and resume, the character policy end to end, and rows that must be dropped."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deepspeech_trainer.prepare.journal import JOURNAL_FILE
from deepspeech_trainer.prepare.pipeline import Interrupted, Options, run
from deepspeech_trainer.prepare.text import Policy

from .conftest import tone

REPO = Path(__file__).resolve().parents[3]


def _pairs(speech, folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        clip, text = speech[i % len(speech)]
        shutil.copy(clip, folder / f"u{i:02d}.wav")
        (folder / f"u{i:02d}.txt").write_text(text, encoding="utf-8")
    return folder


def _journal_lines(dest: Path) -> int:
    return len((dest / JOURNAL_FILE).read_text(encoding="utf-8").splitlines())


def test_interrupt_then_rerun_finishes_the_rest_only(speech, tmp_path):
    src = _pairs(speech, tmp_path / "src", 12)
    dest = tmp_path / "out"
    opts = Options(str(src), str(dest), jobs=1, progress_bar=False)

    def ctrl_c_after_five(done: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"run the same command again"):
        run(opts, out=io.StringIO(), err=io.StringIO(), on_item=ctrl_c_after_five)
    done_first = _journal_lines(dest)
    # Five plus at most the few already queued to the worker, never the whole set.
    assert 5 <= done_first < 12
    assert not (dest / "train.csv").exists()
    assert not list(dest.rglob("*.part"))
    stamps = {p: p.stat().st_mtime_ns for p in (dest / "wav").glob("*.wav")}
    assert len(stamps) == done_first

    result = run(opts, out=io.StringIO(), err=io.StringIO())
    assert (result.reused, result.converted) == (done_first, 12 - done_first)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "a finished file was converted again"
    assert result.summary["rows"] == 12 and result.validation["ok"]

    third = run(opts, out=io.StringIO(), err=io.StringIO())
    assert (third.reused, third.converted) == (12, 0)


def test_changed_source_is_converted_again(speech, tmp_path):
    src = _pairs(speech, tmp_path / "src", 3)
    dest = tmp_path / "out"
    opts = Options(str(src), str(dest), progress_bar=False)
    run(opts, out=io.StringIO(), err=io.StringIO())
    tone(src / "u01.wav", 2.0, 16000)
    again = run(opts, out=io.StringIO(), err=io.StringIO())
    assert (again.reused, again.converted) == (2, 1)
    assert next(r for r in again.rows if r.item.audio == "u01.wav").clip.seconds == pytest.approx(2.0)


def test_sigint_to_the_cli_then_rerun(speech, tmp_path):
    """A real Ctrl-C: the process exits 130 with what it kept; the re-run converts only the rest."""
    src = _pairs(speech, tmp_path / "src", 40)
    dest = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "deepspeech_trainer.prepare",
        str(src),
        str(dest),
        "--jobs",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    journal = dest / JOURNAL_FILE
    try:
        # Wait for the condition "some items done" (polling the child, 60 s cap), then Ctrl-C it.
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.stat().st_size > 0):
            assert time.monotonic() < deadline, "no item finished within 60 s"
            try:
                proc.wait(timeout=0.01)
                break  # it exited: finished or failed, judged below
            except subprocess.TimeoutExpired:
                pass
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")  # machine far faster than expected
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    done = _journal_lines(dest)
    assert 1 <= done < 40
    rerun = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done} already done" in rerun.stderr
    assert _journal_lines(dest) == 40


def test_character_policy_and_drop_report(speech, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    texts = {
        "plain": "Hello world",
        "accents": "Café naïve—déjà vu!",
        "digits": "Room 101 please",
        "emptied": "?!",
        "cyrillic": "привет мир",
    }
    for i, (name, text) in enumerate(texts.items()):
        shutil.copy(speech[i][0], src / f"{name}.wav")
        (src / f"{name}.txt").write_text(text, encoding="utf-8")
    alphabet = tmp_path / "alphabet.txt"
    alphabet.write_text(
        "# English\n \n" + "\n".join("abcdefghijklmnopqrstuvwxyz") + "\n'\n", encoding="utf-8"
    )

    def prepare(policy: Policy, dest: str) -> dict:
        result = run(
            Options(str(src), str(tmp_path / dest), alphabet=str(alphabet), policy=policy, ratios=(1, 0, 0)),
            out=io.StringIO(),
            err=io.StringIO(),
        )
        kept = {r.item.audio.removesuffix(".wav"): r.transcript for r in result.rows}
        dropped = {d.audio.removesuffix(".wav"): d.reason for d in result.drops}
        assert set(kept) | set(dropped) == set(texts) and not set(kept) & set(dropped)  # nothing lost
        with (tmp_path / dest / "dropped.csv").open(encoding="utf-8", newline="") as fh:
            assert {r["origin"]: r["reason"] for r in csv.DictReader(fh)} == {
                f"{k}.txt:1": v for k, v in dropped.items()
            }
        summary = json.loads((tmp_path / dest / "summary.json").read_text(encoding="utf-8"))
        assert sum(summary["dropped"].values()) == len(dropped)
        return {"kept": kept, "dropped": dropped, "alphabet": summary["alphabet"]}

    mapped = prepare(Policy.MAP, "map")
    assert mapped["kept"] == {"plain": "hello world", "accents": "cafe naive deja vu"}
    assert mapped["dropped"] == {
        "digits": "outside_alphabet",
        "emptied": "empty_transcript",
        "cyrillic": "outside_alphabet",
    }

    dropped = prepare(Policy.DROP, "drop")
    assert dropped["kept"] == {"plain": "hello world"}

    kept = prepare(Policy.KEEP, "keep")
    assert (
        kept["kept"]["cyrillic"] == "привет мир" and kept["kept"]["emptied"] == "?!" and not kept["dropped"]
    )
    labels = (tmp_path / "keep" / "alphabet.txt").read_text(encoding="utf-8").splitlines()[1:]
    assert labels[:28] == [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]  # given order first: indices kept
    assert "п" in labels and "1" in labels and kept["alphabet"]["added"]


def test_unreadable_and_too_short_audio_are_dropped_with_reasons(speech, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(speech[0][0], src / "good.wav")
    (src / "good.txt").write_text(speech[0][1], encoding="utf-8")
    (src / "broken.flac").write_bytes(b"fLaC not really a flac file")
    (src / "broken.txt").write_text("whatever", encoding="utf-8")
    tone(src / "blip.wav", 0.2, 16000)
    (src / "blip.txt").write_text("a much longer transcript than fits in a blip", encoding="utf-8")
    (src / "orphan.txt").write_text("no audio", encoding="utf-8")
    result = run(
        Options(str(src), str(tmp_path / "out"), ratios=(1, 0, 0)), out=io.StringIO(), err=io.StringIO()
    )
    reasons = {(d.origin, d.reason) for d in result.drops}
    assert reasons == {
        ("broken.txt:1", "unreadable_audio"),
        ("blip.txt:1", "too_short"),
        ("orphan.txt", "missing_audio"),
    }
    assert "9 feature frames" in next(d.detail for d in result.drops if d.reason == "too_short")
    assert [r.item.audio for r in result.rows] == ["good.wav"]


def test_cli_errors_name_the_file_and_exit_65(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "list.csv").write_text("file,words\nx.wav,hi\n", encoding="utf-8")
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    proc = subprocess.run(
        ["deepspeech-trainer", "prepare", str(src), str(tmp_path / "out"), "--text-column", "sentence"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 65
    assert "list.csv:1: no sentence column 'sentence' in header file, words" in proc.stderr
