from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from deepspeech_trainer.audio import parse_wav_header
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.progress import BestModelSaved, EpochFinished
from deepspeech_trainer.report import StatusReporter, fit_message, write_termination_message
from deepspeech_trainer.s3 import S3Uri, parse_s3_uri
from deepspeech_trainer.staging import StagedCsv, StagedRow
from deepspeech_trainer.tf_state_file import rewrite_state, state_paths
from deepspeech_trainer.train import EpochTracker
from deepspeech_trainer.validation import Settings, settings_from_spec, validate

from tests.unit.trainer_data.wavgen import wav_bytes

ONE_SECOND = parse_wav_header(wav_bytes(seconds=1.0))
STEREO = parse_wav_header(wav_bytes(seconds=1.0, channels=2))


def row(line: int, name: str, text: str, info=ONE_SECOND, problem=None) -> StagedRow:
    return StagedRow(line, name, text, uri=S3Uri("b", f"ds/{name}"), info=info, problem=problem)


def csv_of(split: str, rows: list[StagedRow], index: int = 0) -> StagedCsv:
    return StagedCsv(split, index, f"s3://b/ds/{split}.csv", f"spec.data.{split}[{index}]", rows)


def codes(report) -> list[tuple[str, int, str]]:
    return [(p.file.rsplit("/", 1)[-1], p.line, p.code) for p in report.problems]


def test_all_row_problems_are_reported_with_file_and_line() -> None:
    train = csv_of(
        "train",
        [
            row(2, "a.wav", "hello"),
            row(3, "b.wav", "   "),
            row(4, "c.wav", "x" * 60),  # 49 frames < 60 + 59 repeats
            row(5, "d.wav", "stereo", info=STEREO),
            row(6, "e.wav", "gone", info=None, problem=("file_missing", "s3://b/ds/e.wav does not exist")),
            row(7, "a.wav", "hello"),
            row(8, "f.wav", "tab\there"),
        ],
    )
    report = validate([train], Settings(), alphabet=list(" abcdefghijklmnopqrstuvwxyz"))
    assert not report.ok
    assert codes(report) == [
        ("train.csv", 3, "transcript_empty"),
        ("train.csv", 4, "audio_too_short"),
        ("train.csv", 5, "wav_channels"),
        ("train.csv", 6, "file_missing"),
        ("train.csv", 7, "duplicate_row"),
        ("train.csv", 8, "transcript_control"),
    ]
    assert report.problem_count == 6 and report.counts["audio_too_short"] == 1


def test_unknown_characters_name_them() -> None:
    report = validate([csv_of("train", [row(2, "a.wav", "héllo!")])], Settings(), alphabet=list(" ehlo"))
    assert codes(report) == [("train.csv", 2, "transcript_alphabet"), ("train.csv", 0, "split_too_small")]
    assert "'é'" in report.problems[0].message and "'!'" in report.problems[0].message


def test_alphabet_is_derived_from_all_splits() -> None:
    report = validate(
        [csv_of("train", [row(2, "a.wav", "ab")]), csv_of("dev", [row(2, "b.wav", "c")])], Settings()
    )
    assert report.ok and report.alphabet == [" ", "a", "b", "c"] and report.alphabet_source == "derived"


def test_leak_between_splits_and_empty_splits() -> None:
    report = validate(
        [csv_of("train", [row(2, "a.wav", "ab")]), csv_of("test", [row(2, "a.wav", "ab")])], Settings()
    )
    assert codes(report) == [("test.csv", 2, "duplicate_row"), ("test.csv", 0, "split_empty")]
    assert "leaks between train and test" in report.problems[0].message


def test_train_smaller_than_batch_times_gpus() -> None:
    settings = Settings(batch={"train": 4, "dev": 1, "test": 1}, gpus=2)
    report = validate([csv_of("train", [row(i, f"{i}.wav", "ab") for i in range(2, 9)])], settings)
    assert codes(report) == [("train.csv", 0, "split_too_small")]
    assert "= 8" in report.problems[0].message


def test_problem_list_is_capped_but_counted() -> None:
    rows = [row(i, f"{i}.wav", "") for i in range(2, 502)]
    report = validate([csv_of("train", rows)], Settings(), cap=50)
    assert len(report.problems) == 50 and report.problem_count == 501  # + split_too_small
    assert report.counts["transcript_empty"] == 500


def test_sample_rate_from_extra_args() -> None:
    spec = {"deepspeech": {"version": "0.9.3"}, "training": {"extraArgs": ["--audio_sample_rate", "8000"]}}
    assert settings_from_spec(spec).sample_rate == 8000
    eight_k = parse_wav_header(wav_bytes(seconds=1.0, rate=8000))
    report = validate([csv_of("train", [row(2, "a.wav", "ab", info=eight_k)])], settings_from_spec(spec))
    assert report.ok


def test_validation_speed_100k_rows() -> None:
    import time

    rows = [row(i, f"clips/{i}.wav", "the quick brown fox jumps") for i in range(100_000)]
    started = time.perf_counter()
    report = validate([csv_of("train", rows)], Settings())
    rate = len(rows) / (time.perf_counter() - started)
    assert report.ok
    assert rate > 20_000, f"{rate:.0f} rows/s"


# ---------------------------------------------------------------------------------------------- s3 URIs


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://bucket/a/b.csv") == S3Uri("bucket", "a/b.csv")
    assert str(parse_s3_uri("s3://bucket/p/").child("x")) == "s3://bucket/p/x"
    for bad in ("https://x/y", "s3:///key", "s3://B/k", "bucket/key"):
        with pytest.raises(InvalidInput, match=r"spec\.data\.train"):
            parse_s3_uri(bad, "spec.data.train")


# ---------------------------------------------------------------------------------------------- state files


def test_state_file_paths_become_basenames_or_local() -> None:
    text = (
        'model_checkpoint_path: "/job/ckpt/train-30"\n'
        'all_model_checkpoint_paths: "/job/ckpt/train-20"\n'
        'all_model_checkpoint_paths: "/job/ckpt/train-30"\n'
        "all_model_checkpoint_timestamps: 1.6e+09\n"
    )
    assert state_paths(text) == ["/job/ckpt/train-30", "/job/ckpt/train-20"]
    portable = rewrite_state(text, None)
    assert '"train-30"' in portable and "/job" not in portable and "timestamps" in portable
    assert state_paths(rewrite_state(portable, "/work/checkpoints"))[0] == "/work/checkpoints/train-30"


# ---------------------------------------------------------------------------------------------- termination message


def test_termination_message_is_capped_keeping_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = [
        {"file": "s3://b/ds/train.csv", "line": i, "code": "wav_rate", "message": "x" * 80}
        for i in range(500)
    ]
    obj = {
        "kind": "preflight",
        "ok": False,
        "rows": 500,
        "problemCount": 500,
        "problems": problems,
        "alphabetSize": 29,
    }
    target = tmp_path / "termination-log"
    monkeypatch.setenv("DST_TERMINATION_LOG", str(target))
    data = write_termination_message(obj)
    assert target.read_bytes() == data and len(data) <= 4096
    decoded = json.loads(data)
    assert decoded["problemCount"] == 500 and 10 < len(decoded["problems"]) < 500
    assert decoded["problemsTruncated"] is True


def test_termination_message_with_huge_error_string() -> None:
    data = fit_message({"kind": "train", "ok": False, "error": "é" * 10_000})
    assert len(data) <= 4096 and json.loads(data)["kind"] == "train"


def test_small_message_unchanged() -> None:
    obj = {"kind": "train", "ok": True, "epochsDone": 3}
    assert json.loads(fit_message(obj)) == obj


# ---------------------------------------------------------------------------------------------- status reporter


class _Recorder(BaseHTTPRequestHandler):
    patches: ClassVar[list[tuple[str, str, dict]]] = []

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.patches.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server():
    _Recorder.patches = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_status_reporter_rate_limits_and_coalesces(api_server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    now = [100.0]
    reporter = StatusReporter(
        "en", "speech", "g3", api_base=api_server, token_path=token, min_interval_s=10, clock=lambda: now[0]
    )
    assert reporter.progress(epoch=1, epochs=3, step=5)
    assert not reporter.progress(step=6)  # within 10 s: held back
    now[0] += 11
    assert reporter.progress(step=7, trainLoss=1.5)
    assert reporter.checkpoint("s3://m/ck/g3/", 1)  # forced
    paths = {p for p, _, _ in _Recorder.patches}
    assert paths == {"/apis/training.deepspeech.dev/v1alpha1/namespaces/speech/deepspeechtrainings/en/status"}
    bodies = [b["status"] for _, _, b in _Recorder.patches]
    assert len(bodies) == 3
    assert bodies[1]["progress"]["step"] == 7 and bodies[1]["progress"]["trainLoss"] == 1.5
    assert all(b["progress"]["runId"] == "g3" for b in bodies)
    assert bodies[2]["checkpoint"] == {"uri": "s3://m/ck/g3/", "epoch": 1}
    assert {ct for _, ct, _ in _Recorder.patches} == {"application/merge-patch+json"}


def test_status_reporter_failures_are_not_fatal(tmp_path: Path) -> None:
    reporter = StatusReporter("en", "speech", "g1", api_base="http://127.0.0.1:9", timeout_s=1)
    assert reporter.progress(force=True, epoch=1) is False
    assert reporter.failures == 1


def test_status_reporter_off_cluster_only_logs() -> None:
    reporter = StatusReporter.from_env("g1", env={})
    assert not reporter.enabled and reporter.progress(force=True, epoch=1) is False


# ---------------------------------------------------------------------------------------------- epochs


def test_an_epoch_counts_when_its_checkpoint_is_on_disk_not_on_the_log_line() -> None:
    # DeepSpeech prints "Finished training epoch N" and only then saves: the line alone counts nothing.
    tracker = EpochTracker(offset=2, total=5)
    assert not tracker.on_state("train-12")  # the restored checkpoint, before any new epoch
    tracker.on_event(EpochFinished(0, "train", 3.0, None))
    assert not tracker.on_state("train-12") and tracker.done == 2
    assert tracker.on_state("train-18") and tracker.done == 3
    tracker.on_event(EpochFinished(0, "dev", 2.0, "/d1.csv"))
    tracker.on_event(BestModelSaved(2.2, "/ck/best_dev-18"))
    assert tracker.best_loss == tracker.dev_loss == 2.2  # the weighted figure DeepSpeech printed
    assert not tracker.on_state("train-18")  # validation saves best_dev, not a train checkpoint


def test_a_sync_records_the_epochs_of_the_checkpoint_it_uploads() -> None:
    tracker = EpochTracker(offset=0, total=4)
    tracker.on_event(EpochFinished(0, "train", 3.0, None))
    tracker.on_state("train-6")
    tracker.on_event(EpochFinished(1, "train", 2.0, None))
    tracker.on_state("train-12")
    assert tracker.epochs_in("train-6") == 1 and tracker.epochs_in("train-12") == 2
    # A time-based save inside epoch 3, or an epoch end not yet seen: only the whole epochs before it.
    assert tracker.epochs_in("train-15") == 2
    assert tracker.epochs_in(None) == 0
    tracker.start_invocation()
    assert tracker.offset == 2 and tracker.epochs_in("train-12") == 2


def test_dev_loss_of_several_dev_sets_is_the_step_weighted_mean() -> None:
    tracker = EpochTracker(offset=0, total=3, dev_steps={"/d1.csv": 3, "/d2.csv": 1})
    tracker.on_event(EpochFinished(0, "train", 9.0, None))
    assert not tracker.on_event(EpochFinished(0, "dev", 2.0, "/d1.csv"))
    assert tracker.on_event(EpochFinished(0, "dev", 6.0, "/d2.csv"))
    assert tracker.dev_loss == 3.0  # (2*3 + 6*1) / 4, not the last set's 6.0
    tracker.on_event(BestModelSaved(2.9, "/ck/best_dev-6"))
    assert tracker.dev_loss == 2.9  # DeepSpeech's own figure wins when it prints one


def test_the_step_of_each_new_save_is_reported_once() -> None:
    tracker = EpochTracker(offset=0, total=3)
    tracker.on_state("train-4")  # a time-based save inside the first epoch
    assert tracker.step == 4 and tracker.step_moved() and not tracker.step_moved()
