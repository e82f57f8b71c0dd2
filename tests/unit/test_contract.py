"""The operator and the trainer image agree on the numbers and paths of docs/contract.md.

Neither distribution imports the other, so each keeps its own copy; this is where they must match.
"""

from __future__ import annotations

from deepspeech_operator import contract
from deepspeech_trainer import cli, exitcodes


def test_exit_codes_are_the_same_numbers_on_both_sides() -> None:
    assert (contract.EXIT_INVALID, contract.EXIT_RETRY) == (exitcodes.INVALID, exitcodes.RETRY)


def test_the_exit_codes_are_distinct_and_non_zero() -> None:
    assert len({exitcodes.OK, exitcodes.INVALID, exitcodes.RETRY}) == 3
    assert exitcodes.OK == 0


def test_the_trainers_default_spec_path_is_where_the_operator_mounts_it() -> None:
    assert str(cli.DEFAULT_SPEC) == contract.SPEC_FILE
