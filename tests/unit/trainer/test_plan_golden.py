"""Golden `plan --json` outputs, and every golden command line checked against the stand-in's flag parser.

Regenerate after an intended change with `UPDATE_GOLDEN=1 python -m pytest tests/unit/trainer -k golden`
and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from deepspeech_trainer.cli import main

from tests.standin import standin_flags

from .conftest import GOLDEN_DIR, STANDIN_DIR

CASES = sorted(p.stem for p in GOLDEN_DIR.glob("*.yaml"))
CLEAN_ENV = ("DST_TF_PYTHON", "DST_DEEPSPEECH_DIR", "DST_WORK_DIR", "DST_RUN_ID")


@pytest.fixture(autouse=True)
def _canonical_env(monkeypatch):
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)


def run_plan(case: str, tmp_path, capsys, *extra: str) -> tuple[int, str, str]:
    doc = yaml.safe_load((GOLDEN_DIR / f"{case}.yaml").read_text())
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump({"kind": "DeepSpeechTraining", "apiVersion": "x/v1", "spec": doc["spec"]})
    )
    code = main(["plan", "--spec", str(spec_file), "--epochs-done", str(doc["epochsDone"]), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_there_are_golden_cases():
    assert {"tutorial-0.6.0", "finetune-0.9.3", "transfer-0.9.3", "resume-0.9.3", "tflite-0.8.2"} <= set(
        CASES
    )


@pytest.mark.parametrize("case", CASES)
def test_plan_json_matches_golden(case, tmp_path, capsys):
    code, out, err = run_plan(case, tmp_path, capsys, "--json")
    assert code == 0, err
    actual = json.loads(out)
    golden = GOLDEN_DIR / f"{case}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(actual, indent=2) + "\n")
    assert actual == json.loads(golden.read_text())


@pytest.mark.parametrize("case", CASES)
def test_golden_argv_parse_with_the_standin(case):
    plan = json.loads((GOLDEN_DIR / f"{case}.json").read_text())
    version = plan["version"]
    assert plan["invocations"]
    for inv in plan["invocations"]:
        argv = inv["argv"]
        skip = 3 if version.startswith("0.6.") else 4
        values, leftovers = standin_flags.parse(version, argv[skip:], check_files=False)
        assert leftovers == [], f"{inv['purpose']}: tokens absl would ignore: {leftovers}"
        assert values["log_level"] == 1 and values["show_progressbar"] is False


def test_golden_argv_rejected_flag_really_fails_the_standin(tmp_path):
    """The stand-in's parser is the one its program uses: an unknown flag exits 1 with absl's message."""
    alphabet = tmp_path / "alphabet.txt"
    alphabet.write_text("a\n")
    env = {**os.environ, "STANDIN_VERSION": "0.6.0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-u",
            str(STANDIN_DIR / "DeepSpeech.py"),
            "--alphabet_config_path",
            str(alphabet),
            "--es_epochs",
            "3",
        ],
        cwd=STANDIN_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "FATAL Flags parsing error: Unknown command line flag 'es_epochs'" in proc.stderr


def test_plan_human_output(tmp_path, capsys):
    code, out, _ = run_plan("finetune-0.9.3", tmp_path, capsys)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["train", "test", "export"]
    assert "--load_checkpoint_dir /work/source-checkpoint" in lines[0]
    assert "--scorer_path=" in lines[0] and "--scorer_path /work/data/kenlm.scorer" in lines[1]


def test_plan_honours_work_dir_and_interpreter(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DST_TF_PYTHON", "/opt/tf1/bin/python3")
    code, out, _ = run_plan("tutorial-0.6.0", tmp_path, capsys, "--json", "--work-dir", "/scratch")
    assert code == 0
    argv = json.loads(out)["invocations"][0]["argv"]
    assert argv[0] == "/opt/tf1/bin/python3"
    assert "/scratch/checkpoints" in argv


def test_plan_invalid_spec_exits_65_with_one_line(tmp_path, capsys):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(
        "data: {train: [s3://bkt/t.csv]}\noutput: {uri: s3://bkt/o/}\ntraining: {extraArgs: [--foo]}\n"
    )
    assert main(["plan", "--spec", str(spec_file)]) == 65
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [
        "deepspeech-trainer plan: error: spec.training.extraArgs[0]: unknown flag '--foo' for DeepSpeech 0.9.3"
    ]


def test_plan_relative_work_dir_exits_65(tmp_path, capsys):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("data: {train: [s3://bkt/t.csv]}\noutput: {uri: s3://bkt/o/}\n")
    assert main(["plan", "--spec", str(spec_file), "--work-dir", "relative/dir"]) == 65
    assert "not absolute" in capsys.readouterr().err


def test_plan_missing_spec_file_exits_65(tmp_path, capsys):
    assert main(["plan", "--spec", str(tmp_path / "none.json")]) == 65


def test_plan_rejects_negative_epochs_done(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--spec", "x", "--epochs-done", "-1"])
    assert exc.value.code == 2


def test_preflight_and_train_dispatch_lazily(monkeypatch, capsys):
    """cli imports the sub-command module only when it runs; a TrainerError maps to its exit code."""
    import types

    from deepspeech_trainer.exitcodes import TransientError

    seen = {}

    def fake_main(args):
        seen["args"] = args
        return 0

    def failing_main(args):
        raise TransientError("s3 down")

    monkeypatch.setitem(sys.modules, "deepspeech_trainer.preflight", types.SimpleNamespace(main=fake_main))
    monkeypatch.setitem(sys.modules, "deepspeech_trainer.train", types.SimpleNamespace(main=failing_main))
    monkeypatch.setenv("DST_RUN_ID", "g7")
    assert main(["preflight", "--json"]) == 0
    args = seen["args"]
    assert (str(args.spec), args.json, args.run_id) == ("/etc/deepspeech/spec.json", True, "g7")
    assert main(["train", "--work-dir", "/tmp/w"]) == 75
    assert capsys.readouterr().err.strip() == "deepspeech-trainer train: error: s3 down"


def test_console_script_entry_point_runs(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("data: {train: [s3://bkt/t.csv]}\noutput: {uri: s3://bkt/o/}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "deepspeech_trainer.cli", "plan", "--spec", str(spec_file), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == "0.9.3"
