"""The DeepSpeech stand-in itself (tests/standin) against what the real programs do.

Each expectation was read from DeepSpeech's sources (0.6.0 DeepSpeech.py/evaluate.py, 0.7.4-0.9.3
train.py/evaluate.py/util/checkpoints.py/util/evaluate_tools.py) or, for the file order of a save, traced
(strace) from TensorFlow 1.14 and 1.15's tf.train.Saver.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.standin import standin_core

from .conftest import STANDIN_DIR, write_alphabet, write_csv

DASHES = "-" * 80
SENTENCES = ["hello world", "the quick brown fox", "a test sentence here", "one two three", "yes no"]
LSTM = "cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"

# Wraps the stand-in with an audit hook that prints, on the stand-in's own stdout, every file it opens for
# writing, renames or deletes under $AUDIT_DIR: one stream, so log lines and file operations interleave.
AUDIT = """
import os, runpy, sys
root = os.environ["AUDIT_DIR"]
def name(p):
    p = os.fsdecode(p) if isinstance(p, (str, bytes, os.PathLike)) else ""
    return os.path.relpath(p, root) if p.startswith(root) else None
def hook(event, args):
    if event == "open" and isinstance(args[1], str) and "w" in args[1] and name(args[0]):
        print("AUDIT open", name(args[0]), flush=True)
    elif event == "os.rename" and name(args[1]):
        print("AUDIT rename", name(args[0]), name(args[1]), flush=True)
    elif event == "os.remove" and name(args[0]):
        print("AUDIT remove", name(args[0]), flush=True)
sys.addaudithook(hook)
if os.environ["STANDIN_VERSION"].startswith("0.6."):
    sys.argv[0] = "DeepSpeech.py"
    runpy.run_path("DeepSpeech.py", run_name="__main__")
else:
    runpy.run_module("deepspeech_training.train", run_name="__main__", alter_sys=True)
"""


class Data:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.alphabet = root / "alphabet.txt"
        self.train, self.dev, self.test = (root / f"{n}.csv" for n in ("train", "dev", "test"))
        write_alphabet(self.alphabet)
        for path in (self.train, self.dev, self.test):
            write_csv(path, SENTENCES)
        self.ck = str(root / "ck")


@pytest.fixture
def data(tmp_path) -> Data:
    return Data(tmp_path)


def standin(
    data: Data, version: str, *args: str, audit: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    if audit:
        head = [sys.executable, "-u", "-c", AUDIT]
    elif version.startswith("0.6."):
        head = [sys.executable, "-u", str(STANDIN_DIR / "DeepSpeech.py")]
    else:
        head = [sys.executable, "-u", "-m", "deepspeech_training.train"]
    common = ["--alphabet_config_path", str(data.alphabet), "--log_level", "1", "--noshow_progressbar"]
    common += ["--lm_binary_path=", "--lm_trie_path="] if version.startswith("0.6.") else ["--scorer_path="]
    environment = {
        **os.environ,
        "STANDIN_VERSION": version,
        "STANDIN_EPOCH_SECONDS": "0",
        "XDG_DATA_HOME": str(data.root / "xdg"),
        "AUDIT_DIR": data.ck,
        **env,
    }
    result = subprocess.run(
        [*head, *common, *args],
        cwd=STANDIN_DIR,
        env=environment,
        capture_output=True,
        timeout=60,
    )
    # Decoded by hand: text=True would turn progress bars' lone \r into \n.
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def train(
    data: Data, version: str, *args: str, epochs: int = 2, **env: str
) -> subprocess.CompletedProcess[str]:
    """Trains into data.ck: 5 samples, batch 1 → steps 5, 10, …; STANDIN_DEV_LOSSES picks the best."""
    argv = ["--train_files", str(data.train), "--dev_files", str(data.dev), "--checkpoint_dir", data.ck]
    argv += ["--train_batch_size", "1", "--n_hidden", "8", "--epochs", str(epochs)]
    argv += ["--load", "init"] if version.startswith("0.6.") else ["--load_train", "init"]
    result = standin(data, version, *argv, *args, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def out(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stdout.splitlines()


def shape(lines: list[str], data: Data) -> list[str]:
    """Lines with paths and numbers made generic."""
    text = "\n".join(lines).replace(data.ck, "CK").replace(str(data.root), "DATA")
    text = re.sub(r"in \d+:\d\d:\d\d\.\d+", "in T", text)
    return re.sub(r"\b\d+\.\d{6}\b", "F", text).split("\n")


def prepared(data: Data, version: str) -> None:
    """train-5 and train-10 on disk; best_dev-5 is the best (the second epoch validates worse)."""
    train(data, version, STANDIN_DEV_LOSSES="1,2")
    assert os.path.isfile(f"{data.ck}/train-10.index") and os.path.isfile(f"{data.ck}/best_dev-5.index")


# ------------------------------------------------------------------------------------------- loading


def test_060_train_loads_per_load_flag_auto_meaning_last_then_best(data):
    prepared(data, "0.6.0")
    base = ["--train_files", str(data.train), "--checkpoint_dir", data.ck, "--n_hidden", "8", "--epochs", "0"]
    auto = standin(data, "0.6.0", *base, "--load", "auto")
    assert f"I Restored variables from most recent checkpoint at {data.ck}/train-10, step 10" in out(auto)
    best = standin(data, "0.6.0", *base, "--load", "best")
    assert f"I Restored variables from best validation checkpoint at {data.ck}/best_dev-5, step 5" in out(
        best
    )
    init = standin(data, "0.6.0", *base, "--load", "init")
    assert "I Initializing variables..." in out(init) and not any("Restored" in x for x in out(init))
    other = standin(data, "0.6.0", *base, "--load", "newest")  # initialize_globals(): anything else is auto
    assert out(other)[0] == out(auto)[0]

    empty = ["--train_files", str(data.train), "--checkpoint_dir", str(data.root / "none"), "--n_hidden", "8"]
    last = standin(data, "0.6.0", *empty, "--load", "last")
    assert last.returncode == 1
    assert out(last)[-1] == (
        'E Unable to load last model from specified checkpoint dir - consider using load option "auto" or "init".'
    )


def test_060_evaluate_restores_only_for_auto_best_last(data):
    prepared(data, "0.6.0")
    base = ["--test_files", str(data.test), "--checkpoint_dir", data.ck, "--n_hidden", "8"]
    auto = standin(data, "0.6.0", *base, "--load", "auto")  # evaluate's auto: best first
    assert auto.returncode == 0, auto.stderr
    assert (
        out(auto)[0]
        == f"I Restored variables from best validation checkpoint at {data.ck}/best_dev-5, step 5"
    )
    last = standin(data, "0.6.0", *base, "--load", "last")
    assert out(last)[0] == f"I Restored variables from most recent checkpoint at {data.ck}/train-10, step 10"

    init = standin(data, "0.6.0", *base, "--load", "init")
    assert init.returncode == 1
    assert out(init) == [f"Could not load checkpoint from {data.ck}"]  # a bare print, no `E `
    assert "Traceback (most recent call last):" in init.stderr
    assert init.stderr.splitlines()[-1] == "NameError: name 'sys' is not defined"


def test_060_export_ignores_load_and_freezes_the_newest_checkpoint(data):
    prepared(data, "0.6.0")
    export = data.root / "export"
    argv = ["--export_dir", str(export), "--checkpoint_dir", data.ck, "--n_hidden", "8", "--load", "best"]
    result = standin(data, "0.6.0", *argv)
    assert result.returncode == 0, result.stderr
    assert out(result) == ["I Exporting the model...", f"I Models exported at {export}"]
    info = json.loads((export / "output_graph.pb").read_text().split("\n", 1)[1])
    assert info["loaded_from"] == f"{data.ck}/train-10"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", ["I Loading best validating checkpoint from CK/best_dev-5"]),
        ("best", ["I Loading best validating checkpoint from CK/best_dev-5"]),
        ("last", ["I Loading most recent checkpoint from CK/train-10"]),
        # initialize_globals() turns any other choice, `init` included, into auto.
        ("init", ["I Loading best validating checkpoint from CK/best_dev-5"]),
        ("newest", ["I Loading best validating checkpoint from CK/best_dev-5"]),
    ],
)
def test_093_load_evaluate(data, choice, expected):
    prepared(data, "0.9.3")
    argv = ["--test_files", str(data.test), "--checkpoint_dir", data.ck, "--n_hidden", "8"]
    result = standin(data, "0.9.3", *argv, "--load_evaluate", choice)
    assert result.returncode == 0, result.stderr
    lines = [
        x
        for x in shape(out(result), data)
        if x.startswith("I ") and not x.startswith(("I Loading variable", "I Initializing variable"))
    ]
    assert lines[: len(expected)] == expected
    assert lines[len(expected)] == "I Test epoch..."


def test_093_load_evaluate_auto_falls_back_to_last_then_fails(data):
    train(data, "0.9.3", "--dev_files=")  # no validation: no best_dev_checkpoint
    argv = ["--test_files", str(data.test), "--checkpoint_dir", data.ck, "--n_hidden", "8"]
    result = standin(data, "0.9.3", *argv)
    assert out(result)[:2] == [
        "I Could not find best validating checkpoint.",
        f"I Loading most recent checkpoint from {data.ck}/train-10",
    ]
    argv[3] = str(data.root / "none")
    failed = standin(data, "0.9.3", *argv)
    assert failed.returncode == 1
    assert out(failed) == [
        "I Could not find best validating checkpoint.",
        "I Could not find most recent checkpoint.",
        "E All initialization methods failed (['best', 'last']).",
    ]
    fresh = standin(data, "0.9.3", *argv, "--load_evaluate", "init")  # means auto: never fresh weights
    assert fresh.returncode == 1 and out(fresh) == out(failed)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "I Loading best validating checkpoint from CK/best_dev-5"),
        ("best", "I Loading best validating checkpoint from CK/best_dev-5"),
        ("last", "I Loading most recent checkpoint from CK/train-10"),
        ("init", "I Initializing all variables."),
        ("newest", "I Loading best validating checkpoint from CK/best_dev-5"),  # unknown: auto
    ],
)
def test_093_load_train(data, choice, expected):
    prepared(data, "0.9.3")
    argv = ["--train_files", str(data.train), "--checkpoint_dir", data.ck, "--n_hidden", "8", "--epochs", "0"]
    result = standin(data, "0.9.3", *argv, "--load_train", choice)
    assert result.returncode == 0, result.stderr
    assert shape(out(result), data)[0] == expected


def test_093_variables_each_graph_loads(data):
    prepared(data, "0.9.3")
    test = standin(
        data, "0.9.3", "--test_files", str(data.test), "--checkpoint_dir", data.ck, "--n_hidden", "8"
    )
    loaded = [x.split(": ", 1)[1] for x in out(test) if x.startswith("I Loading variable from checkpoint: ")]
    assert loaded == sorted(
        [f"{LSTM}/bias", f"{LSTM}/kernel", "global_step"]
        + [f"layer_{n}/{w}" for n in (1, 2, 3, 5, 6) for w in ("bias", "weights")]
    )
    export = standin(
        data, "0.9.3", "--export_dir", str(data.root / "e"), "--checkpoint_dir", data.ck, "--n_hidden", "8"
    )
    exported = [
        x.split(": ", 1)[1] for x in out(export) if x.startswith("I Loading variable from checkpoint: ")
    ]
    assert exported == [v for v in loaded if v != "global_step"]
    argv = ["--train_files", str(data.train), "--checkpoint_dir", data.ck, "--n_hidden", "8", "--epochs", "0"]
    forced = standin(data, "0.9.3", *argv, "--force_initialize_learning_rate")
    assert "I Loading variable from checkpoint: layer_1/bias/Adam_1" in out(forced)
    assert out(forced)[-3:-2] == ["I Initializing variable: learning_rate"]


def test_cudnn_checkpoint_into_the_cpu_graph_needs_load_cudnn(data):
    train(data, "0.9.3", "--train_cudnn", epochs=1)
    argv = ["--train_files", str(data.train), "--checkpoint_dir", data.ck, "--n_hidden", "8", "--epochs", "0"]
    plain = standin(data, "0.9.3", *argv, "--load_train", "last")
    assert plain.returncode == 1
    assert plain.stderr.splitlines()[-1] == (
        f"tensorflow.python.framework.errors_impl.NotFoundError: Key {LSTM}/bias/Adam not found in checkpoint"
    )
    converted = standin(data, "0.9.3", *argv, "--load_train", "last", "--load_cudnn")
    assert converted.returncode == 0, converted.stderr
    missing = [f"{LSTM}/{w}/{s}" for w in ("bias", "kernel") for s in ("Adam", "Adam_1")]
    assert [x for x in out(converted) if x.startswith("W ")] == [
        f"W CUDNN variable not found: {m}" for m in missing
    ]
    assert [x for x in out(converted) if x.startswith("I Initializing variable: ")] == [
        f"I Initializing variable: {m}" for m in missing
    ]


def test_shape_mismatch_060_logs_errors_093_raises(data):
    train(data, "0.6.0", epochs=1)
    argv = ["--test_files", str(data.test), "--checkpoint_dir", data.ck, "--n_hidden", "16", "--load", "best"]
    old = standin(data, "0.6.0", *argv)
    assert old.returncode == 1 and "Traceback" not in old.stderr
    assert out(old)[2] == "E Assign requires shapes of both tensors to match. lhs shape= [16] rhs shape= [8]"
    assert out(old)[-1].startswith(f"E The checkpoint in {data.ck}/best_dev-5 does not match the shapes")

    new = Data(data.root / "new")
    train(new, "0.9.3", epochs=1)
    result = standin(
        new, "0.9.3", "--test_files", str(new.test), "--checkpoint_dir", new.ck, "--n_hidden", "16"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"ValueError: Cannot feed value of shape (32,) for Tensor '{LSTM}/bias/Initializer/Const:0', which has"
        " shape '(64,)'"
    )


# ------------------------------------------------------------------------------------------- output


@pytest.mark.parametrize("version", ["0.6.0", "0.9.3"])
def test_noshow_progressbar_training_prints_epoch_lines_only(data, version):
    result = train(data, version, STANDIN_DEV_LOSSES="3,2")
    epoch = [
        "I Training epoch {e}...",
        "I Finished training epoch {e} - loss: F",
        "I Validating epoch {e} on DATA/dev.csv...",
        "I Finished validating epoch {e} on DATA/dev.csv - loss: F",
        "I Saved new best validating model with loss F to: CK/best_dev-{s}",
    ]
    if version != "0.6.0":
        epoch.append(DASHES)  # 0.7+ prints it after every epoch, bars or not; 0.6 never
    expected = ["I Initializing variables..." if version == "0.6.0" else "I Initializing all variables."]
    expected += ["I STARTING Optimization"]
    for e, s in ((0, 5), (1, 10)):
        expected += [line.format(e=e, s=s) for line in epoch]
    expected += ["I FINISHED optimization in T"]
    assert shape(out(result), data) == expected
    assert "\r" not in result.stdout


@pytest.mark.parametrize("version", ["0.6.0", "0.9.3"])
def test_noshow_progressbar_test_prints_the_real_report(data, version):
    prepared(data, version)
    report = str(data.root / "samples.json")
    load = ["--load", "best"] if version == "0.6.0" else ["--load_evaluate", "best"]
    argv = [
        "--test_files",
        str(data.test),
        "--checkpoint_dir",
        data.ck,
        "--n_hidden",
        "8",
        "--report_count",
        "2",
    ]
    result = standin(data, version, *argv, *load, "--test_output_file", report)
    assert result.returncode == 0, result.stderr
    lines = [
        x for x in out(result) if not x.startswith(("I Loading variable", "I Restored", "I Loading best"))
    ]
    assert lines[:4] == [f"Testing model on {data.test}", "I Test epoch...", lines[2], DASHES]
    assert re.fullmatch(
        rf"Test on {re.escape(str(data.test))} - WER: \d\.\d{{6}}, CER: \d\.\d{{6}}, loss: [\d.]+", lines[2]
    )
    assert not any(x.startswith("Test epoch |") for x in lines)
    sample = ["WER: *", " - wav: file://*", ' - src: "*"', ' - res: "*"', DASHES]
    generic = [
        re.sub(r'^(WER: | - wav: file://| - src: "| - res: ")(.*?)("?)$', r"\1*\3", x) for x in lines[4:]
    ]
    samples = json.loads(Path(report).read_text())
    wers = [s["wer"] for s in samples]
    if version == "0.6.0":
        assert generic == sample * 2  # the first report_count samples, no headings
        assert wers == sorted(wers, reverse=True)  # worst first
        assert Path(report).read_text().startswith('[{"wav_filename": ')  # one line, no indent
    else:
        # best 2, median samples[1:3], worst 2 (of 5); print('Best WER:', …) leaves a trailing space
        heading = [["Best WER: ", DASHES], ["Median WER: ", DASHES], ["Worst WER: ", DASHES]]
        assert generic == [line for head in heading for line in [*head, *sample * 2]]
        assert wers == sorted(wers)
        assert Path(report).read_text().startswith("[\n  {\n")


def test_progressbar_mode_prints_bars_instead_of_log_lines(data):
    result = train(data, "0.9.3", "--show_progressbar", epochs=1)
    assert not any(x.startswith("I Training epoch") or x.startswith("I Finished") for x in out(result))
    assert "\rEpoch 0 |   Training | Elapsed Time: 0:00:00 | Steps: 5 | Loss: " in result.stdout
    test = standin(
        data,
        "0.9.3",
        "--show_progressbar",
        "--test_files",
        str(data.test),
        "--checkpoint_dir",
        data.ck,
        "--n_hidden",
        "8",
    )
    assert "\rTest epoch | Steps: 5 | Elapsed Time: 0:00:00\n" in test.stdout
    assert "I Test epoch..." not in out(test)


def test_093_export_lines(data):
    prepared(data, "0.9.3")
    export = data.root / "export"
    argv = ["--export_dir", str(export), "--checkpoint_dir", data.ck, "--n_hidden", "8"]
    lines = [x for x in out(standin(data, "0.9.3", *argv)) if not x.startswith("I Loading variable")]
    assert lines == [
        "I Exporting the model...",
        f"I Loading best validating checkpoint from {data.ck}/best_dev-5",
        f"I Models exported at {export}",
        f"I Model metadata file saved to {export}/author_model_0.0.1.md. Before submitting the exported model for"
        " publishing make sure all information in the metadata file is correct, and complete the URL fields.",
    ]


# ------------------------------------------------------------------------------------------- saving


def audit_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    keep = [x for x in out(result) if x.startswith(("AUDIT", "I Finished training", "I Saved"))]
    keep = [x for x in keep if "flags.txt" not in x]
    return [re.sub(r"tempstate\d+", "tempstate*", re.sub(r"\.tmp[0-9a-f]{32}", ".tmp*", x)) for x in keep]


def saved(prefix: str, state: str = "checkpoint", deleted: str | None = None) -> list[str]:
    data = f"{prefix}.data-00000-of-00001"
    lines = [
        f"AUDIT open {data}.tempstate*",
        f"AUDIT rename {data}.tempstate* {data}",
        f"AUDIT open {prefix}.index.tempstate*",
        f"AUDIT rename {prefix}.index.tempstate* {prefix}.index",
        f"AUDIT open {state}.tmp*",
        f"AUDIT rename {state}.tmp* {state}",
    ]
    if deleted:
        lines += [f"AUDIT remove {deleted}{s}" for s in (".meta", ".index", ".data-00000-of-00001")]
    return [*lines, f"AUDIT open {prefix}.meta.tmp*", f"AUDIT rename {prefix}.meta.tmp* {prefix}.meta"]


@pytest.mark.parametrize("version", ["0.6.0", "0.9.3"])
def test_epoch_line_then_tf_saver_order_data_index_state_delete_meta(data, version):
    result = train(data, version, "--dev_files=", "--max_to_keep", "1", audit=True, epochs=3)
    loss = r"\d+\.\d{6}"
    lines = audit_lines(result)
    expected = ["I Finished training epoch 0 - loss: L", *saved("train-5")]
    expected += ["I Finished training epoch 1 - loss: L", *saved("train-10", deleted="train-5")]
    expected += ["I Finished training epoch 2 - loss: L", *saved("train-15", deleted="train-10")]
    assert [re.sub(loss, "L", x) for x in lines] == expected
    state = Path(data.ck, "checkpoint").read_text()
    assert (
        state
        == f'model_checkpoint_path: "{data.ck}/train-15"\nall_model_checkpoint_paths: "{data.ck}/train-15"\n'
    )
    assert sorted(p.name for p in Path(data.ck).glob("train-*")) == [
        "train-15.data-00000-of-00001", "train-15.index", "train-15.meta"
    ]  # fmt: skip


def test_best_dev_is_saved_after_its_validation_line(data):
    result = train(data, "0.9.3", audit=True, epochs=1)
    lines = [x for x in audit_lines(result) if "best_dev" in x]
    assert lines[:-1] == saved("best_dev-5", "best_dev_checkpoint")
    assert re.fullmatch(
        rf"I Saved new best validating model with loss [\d.]+ to: {data.ck}/best_dev-5", lines[-1]
    )


def test_max_to_keep_zero_keeps_everything_and_lists_the_newest(data):
    train(data, "0.9.3", "--dev_files=", "--max_to_keep", "0", epochs=3)
    assert sorted(p.name for p in Path(data.ck).glob("train-*.index")) == [
        "train-10.index", "train-15.index", "train-5.index"
    ]  # fmt: skip
    state = Path(data.ck, "checkpoint").read_text()
    assert (
        state
        == f'model_checkpoint_path: "{data.ck}/train-15"\nall_model_checkpoint_paths: "{data.ck}/train-15"\n'
    )


def test_checkpoint_secs_zero_never_saves_mid_epoch(data):
    result = train(data, "0.9.3", "--dev_files=", "--checkpoint_secs", "0", audit=True, epochs=1)
    assert [x for x in audit_lines(result) if x.startswith("AUDIT rename") and x.endswith(".index")] == [
        "AUDIT rename train-5.index.tempstate* train-5.index"
    ]


# ------------------------------------------------------------------------------------------- training


def test_093_plateau_reloads_best_dev_with_its_step_and_saves_it_again(data):
    argv = ["--reduce_lr_on_plateau", "--plateau_epochs", "2", "--learning_rate", "0.001"]
    result = train(data, "0.9.3", *argv, epochs=4, STANDIN_DEV_LOSSES="1,2,3,3")
    lines = [
        x
        for x in shape(out(result), data)
        if not x.startswith(("I Loading variable", "I Training", "I Valid"))
    ]
    assert lines[lines.index("I Finished training epoch 2 - loss: F") :][:6] == [
        "I Finished training epoch 2 - loss: F",
        "I Finished validating epoch 2 on DATA/dev.csv - loss: F",
        "I Loading best validating checkpoint from CK/best_dev-5",
        "I Encountered a plateau, reducing learning rate to 0.000100000005",  # str(np.float32)
        "I Saved best validating model with reduced learning rate to: CK/best_dev-5",
        DASHES,
    ]
    # The global step came back with the weights: epoch 3 ends at step 10 again.
    newest = standin_core.read_state(data.ck, "checkpoint")
    assert newest == f"{data.ck}/train-10"
    weights = standin_core.read_weights(newest)
    assert weights["learning_rate"] == 0.000100000005 and weights["epochs_trained"] == 2


def test_074_plateau_only_reduces_the_learning_rate(data):
    argv = ["--reduce_lr_on_plateau", "--plateau_epochs", "2", "--learning_rate", "0.001"]
    result = train(data, "0.7.4", *argv, epochs=4, STANDIN_DEV_LOSSES="1,2,3,3")
    assert "I Encountered a plateau, reducing learning rate to 0.000100000005" in out(result)
    assert not any("reduced learning rate" in x or x.startswith("I Loading best") for x in out(result))
    assert standin_core.read_state(data.ck, "checkpoint") == f"{data.ck}/train-20"


def test_060_early_stop_uses_mean_and_std_of_the_last_es_steps(data):
    result = train(
        data, "0.6.0", "--early_stop", "--es_steps", "3", epochs=6, STANDIN_DEV_LOSSES="5,4,4.1,4.05"
    )
    assert out(result)[-2] == (
        "I Early stop triggered as (for last 3 steps) validation loss: 4.050000 with standard deviation:"
        " 0.050000 and mean: 4.050000"
    )
    assert "I Training epoch 4..." not in out(result)


def test_093_early_stop_counts_epochs_without_min_delta_improvement(data):
    argv = ["--early_stop", "--es_epochs", "2", "--es_min_delta", "0.5"]
    result = train(data, "0.9.3", *argv, epochs=6, STANDIN_DEV_LOSSES="5,4.8,4.6,4")
    # 4.8 and 4.6 are better but by less than 0.5: two epochs without improvement.
    assert "I Early stop triggered as the loss did not improve the last 2 epochs" in out(result)
    assert "I Training epoch 3..." not in out(result)


def test_sigint_during_training_still_finishes_optimization(data):
    argv = [
        "--train_files",
        str(data.train),
        "--checkpoint_dir",
        data.ck,
        "--n_hidden",
        "8",
        "--load_train",
        "init",
    ]
    env = {
        **os.environ,
        "STANDIN_VERSION": "0.9.3",
        "STANDIN_EPOCH_SECONDS": "60",
        "XDG_DATA_HOME": str(data.root),
    }
    common = ["--alphabet_config_path", str(data.alphabet), "--noshow_progressbar", "--scorer_path="]
    with subprocess.Popen(
        [sys.executable, "-u", "-m", "deepspeech_training.train", *common, *argv],
        cwd=STANDIN_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("I Training epoch 0..."):
                break
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(30) == 0
    assert rest.splitlines()[-1].startswith("I FINISHED optimization in ")
    assert not list(Path(data.ck).glob("train-*"))


@pytest.mark.parametrize(
    ("rate", "factor", "printed"),
    [
        (0.001, 0.1, "0.000100000005"),
        (0.0001, 0.1, "1e-05"),
        (0.001, 0.5, "0.0005"),
        (0.00095, 0.1, "9.5e-05"),
        (0.0003, 0.3, "9.000001e-05"),
    ],
)
def test_learning_rate_prints_like_numpy_float32(rate, factor, printed):
    # Values from numpy 1.18 (DeepSpeech 0.9.3's): str(np.float32(rate) * np.float32(factor)).
    f32 = standin_core.f32
    assert standin_core.f32_str(f32(f32(rate) * f32(factor))) == printed


@pytest.mark.parametrize(("version", "count"), [("0.6.0", 4), ("0.9.3", 5)])
def test_test_batches_drop_the_remainder_only_on_060(data, version, count):
    """0.6.0 batches every set with drop_remainder=True: 5 samples, batch 2 → the 4 smallest files."""
    prepared(data, version)
    report = data.root / "samples.json"
    argv = [
        "--test_files",
        str(data.test),
        "--checkpoint_dir",
        data.ck,
        "--n_hidden",
        "8",
        "--test_batch_size",
        "2",
    ]
    result = standin(data, version, *argv, "--test_output_file", str(report))
    assert result.returncode == 0, result.stderr
    tested = {s["src"] for s in json.loads(report.read_text())}
    assert tested == set(SENTENCES[:count])  # write_csv makes each file bigger than the one before
