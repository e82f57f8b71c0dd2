from __future__ import annotations

import math
import os
import threading

import pytest
from deepspeech_trainer import progress as pg

# Lines in the formats of reference §6.4 / §6.5.
CASES = [
    (
        "Epoch 0 |   Training | Elapsed Time: 0:00:16 | Steps: 33 | Loss: 18.239303",
        pg.EpochProgress(0, "train", 33, 18.239303, "0:00:16", None),
    ),
    (
        "Epoch 0 | Validation | Elapsed Time: 0:00:00 | Steps: 0 | Loss: 0.000000 | Dataset: /data/dev.csv",
        pg.EpochProgress(0, "dev", 0, 0.0, "0:00:00", "/data/dev.csv"),
    ),
    (
        "Epoch 12 |    Metrics | Elapsed Time: 1 day, 2:03:04 | Steps: 5 | Loss: 9.876543 | Dataset: /data/m.csv",
        pg.EpochProgress(12, "metrics", 5, 9.876543, "1 day, 2:03:04", "/data/m.csv"),
    ),
    ("I Training epoch 0...", pg.EpochStarted(0, "train", None)),
    ("I Finished training epoch 0 - loss: 12.345678", pg.EpochFinished(0, "train", 12.345678, None)),
    ("I Validating epoch 3 on /data/dev.csv...", pg.EpochStarted(3, "dev", "/data/dev.csv")),
    (
        "I Finished validating epoch 0 on /data/dev.csv - loss: 10.123456",
        pg.EpochFinished(0, "dev", 10.123456, "/data/dev.csv"),
    ),
    ("I Metrics for epoch 0 on /data/m.csv...", pg.EpochStarted(0, "metrics", "/data/m.csv")),
    (
        "I Metrics for epoch 0 on /data/m.csv - loss: 9.876543",
        pg.EpochFinished(0, "metrics", 9.876543, "/data/m.csv"),
    ),
    ("I STARTING Optimization", pg.OptimizationStarted()),
    (
        "I Saved new best validating model with loss 10.123456 to: /job/ckpt/best_dev-1234",
        pg.BestModelSaved(10.123456, "/job/ckpt/best_dev-1234"),
    ),
    (
        "I Early stop triggered as the loss did not improve the last 3 epochs",
        pg.EarlyStop("Early stop triggered as the loss did not improve the last 3 epochs"),
    ),
    (
        "I Early stop triggered as (for last 4 steps) validation loss: 2.5 with standard deviation: 0.1 and mean: 2.4",
        pg.EarlyStop(
            "Early stop triggered as (for last 4 steps) validation loss: 2.5 with standard deviation: 0.1 and mean: 2.4"
        ),
    ),
    ("I Encountered a plateau, reducing learning rate to 1e-05", pg.LearningRateReduced(1e-05)),
    ("I FINISHED optimization in 1:02:03.456789", pg.OptimizationFinished("1:02:03.456789")),
    (
        "I Loading best validating checkpoint from /job/ckpt/best_dev-1234",
        pg.CheckpointLoaded("best", "/job/ckpt/best_dev-1234"),
    ),
    (
        "I Loading most recent checkpoint from /job/ckpt/train-1500",
        pg.CheckpointLoaded("last", "/job/ckpt/train-1500"),
    ),
    ("I Initializing all variables.", pg.CheckpointLoaded("init", None)),
    (
        "I Restored variables from most recent checkpoint at /c/train-77, step 77",
        pg.CheckpointLoaded("last", "/c/train-77", 77),
    ),
    (
        "I Restored variables from best validation checkpoint at /c/best_dev-70, step 70",
        pg.CheckpointLoaded("best", "/c/best_dev-70", 70),
    ),
    ("I Initializing variables...", pg.CheckpointLoaded("init", None)),
    ("Testing model on /data/test.csv", pg.TestStarted("/data/test.csv")),
    ("Test epoch | Steps: 1844 | Elapsed Time: 0:51:11", pg.TestProgress(1844, "0:51:11")),
    (
        "Test on /data/test.csv - WER: 1.000000, CER: 0.824103, loss: 104.989326",
        pg.TestResult("/data/test.csv", 1.0, 0.824103, 104.989326),
    ),
    ("I Models exported at /job/out/pb", pg.ModelExported("/job/out/pb")),
    (
        "E The following files caused an infinite (or NaN) loss: /data/a.wav,/data/b.wav",
        pg.NonFiniteLoss(("/data/a.wav", "/data/b.wav")),
    ),
    (
        "E All initialization methods failed (['best']).",
        pg.ErrorLine("E All initialization methods failed (['best'])."),
    ),
    (
        "FATAL Flags parsing error: Unknown command line flag 'foo'",
        pg.ErrorLine("FATAL Flags parsing error: Unknown command line flag 'foo'"),
    ),
    (
        "ZeroDivisionError: float division by zero",
        pg.ErrorLine("ZeroDivisionError: float division by zero", cause=False),
    ),
    (
        "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor",
        pg.ErrorLine(
            "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor",
            cause=False,
        ),
    ),
]


@pytest.mark.parametrize(("line", "event"), CASES, ids=[c[0][:40] for c in CASES])
def test_parse_line(line, event):
    assert pg.parse_line(line) == event


@pytest.mark.parametrize(
    "line",
    [
        "WER: 1.000000, CER: 0.873786, loss: 317.729767",  # per-sample block, not a set summary
        ' - src: "hello"',
        "-" * 80,
        "I Could not find best validating checkpoint.",
        "Best WER:",
        "",
    ],
)
def test_uninteresting_lines(line):
    assert pg.parse_line(line) is None


def test_nan_and_inf_losses():
    nan = pg.parse_line("I Finished training epoch 2 - loss: nan")
    assert isinstance(nan, pg.EpochFinished) and math.isnan(nan.loss)
    inf = pg.parse_line("Epoch 1 |   Training | Elapsed Time: 0:00:01 | Steps: 3 | Loss: inf")
    assert isinstance(inf, pg.EpochProgress) and inf.loss == math.inf


def _lines_of_chunks(chunks: list[bytes]) -> list[str]:
    """text_lines over a real pipe written in the given chunks, as a child's stdout arrives."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader:
        writer = threading.Thread(target=_write_chunks, args=(write_fd, chunks))
        writer.start()
        got = list(pg.text_lines(reader))
        writer.join()
    return got


def _write_chunks(fd: int, chunks: list[bytes]) -> None:
    with os.fdopen(fd, "wb", buffering=0) as w:
        for chunk in chunks:
            w.write(chunk)


def test_lines_split_at_carriage_return_redraws_across_chunks():
    got = _lines_of_chunks(
        [
            b"Epoch 0 |   Training | Elapsed Time: 0:00:01 | Steps: 1 | Loss: 3.0\rEpoch 0 |   Tr",
            b"aining | Elapsed Time: 0:00:02 | Steps: 2 | Loss: 2.5\r",
            b"\nI Finished training epoch 0 - loss: 2.5\nI Vali",
        ]
    )
    assert got == [
        "Epoch 0 |   Training | Elapsed Time: 0:00:01 | Steps: 1 | Loss: 3.0",
        "Epoch 0 |   Training | Elapsed Time: 0:00:02 | Steps: 2 | Loss: 2.5",
        "I Finished training epoch 0 - loss: 2.5",
        "I Vali",
    ]
    assert [type(pg.parse_line(x)).__name__ for x in got[:3]] == [
        "EpochProgress",
        "EpochProgress",
        "EpochFinished",
    ]


def test_lines_keep_utf8_split_across_chunks_and_crlf():
    data = "Testing model on /data/tëst.csv\r\nx\n".encode()
    cut = data.index("ë".encode()) + 1
    assert _lines_of_chunks([data[:cut], data[cut:]]) == ["Testing model on /data/tëst.csv", "x"]


def test_a_line_arrives_before_the_writer_sends_more():
    read_fd, write_fd = os.pipe()
    first_seen = threading.Event()
    waited: list[bool] = []

    def write() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as w:
            w.write(b"I Finished training epoch 0 - loss: 2.5\n")
            waited.append(first_seen.wait(timeout=10))
            w.write(b"next\n")

    writer = threading.Thread(target=write)
    writer.start()
    with os.fdopen(read_fd, "rb") as reader:
        lines = pg.text_lines(reader)
        assert next(lines) == "I Finished training epoch 0 - loss: 2.5"
        first_seen.set()
        assert list(lines) == ["next"]
    writer.join()
    assert waited == [True]


def test_undecodable_bytes_do_not_stop_the_stream():
    assert _lines_of_chunks([b"bad \xff byte\nnext\n"]) == ["bad \ufffd byte", "next"]


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        ("Could not load checkpoint from /w/checkpoints", True),
        ("/bin/sh: 1: toco_from_protos: not found", True),
        (
            "2026-12-02 16:39:47.117489: E tensorflow/stream_executor/cuda/cuda_driver.cc:318] failed call",
            True,
        ),
        ("2026-12-02 16:39:47.117489: F tensorflow/core/framework/tensor_shape.cc:44] Check failed", True),
        ("E1202 16:39:47.117489 140708102679424 train.py:145] All initialization methods failed", True),
        ("NameError: name 'sys' is not defined", False),
    ],
)
def test_real_failure_lines_are_errors(line, cause):
    assert pg.parse_line(line) == pg.ErrorLine(line, cause=cause)


def test_the_reported_cause_stays_beside_the_traceback_consequence():
    from deepspeech_trainer.runner import failure_detail

    errors = ("Could not load checkpoint from /w/c", "NameError: name 'sys' is not defined")
    assert failure_detail(errors, errors[:1]) == (
        "NameError: name 'sys' is not defined (after: Could not load checkpoint from /w/c)"
    )
    assert failure_detail(("E boom",), ("E boom",)) == "E boom"
