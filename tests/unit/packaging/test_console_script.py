"""The installed `deepspeech-trainer` script is the entry that becomes the container's init (pid1)."""

from __future__ import annotations

from importlib.metadata import entry_points


def test_the_console_script_starts_through_the_pid1_entry():
    (script,) = (e for e in entry_points(group="console_scripts") if e.name == "deepspeech-trainer")
    assert script.value == "deepspeech_trainer.cli:entrypoint"
