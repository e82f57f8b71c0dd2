"""Exit codes of the trainer: part of the operator contract (docs/contract.md).

The operator's Job has a podFailurePolicy that fails the Job at once on INVALID and counts RETRY
against backoffLimit, so only these two non-zero codes are ever chosen on purpose.
"""

from __future__ import annotations

OK = 0
INVALID = 65  # sysexits EX_DATAERR: invalid spec or data, retrying cannot help
RETRY = 75  # sysexits EX_TEMPFAIL: storage/transient error, or checkpointed after SIGTERM


class TrainerError(Exception):
    """Base of the errors that map to a documented exit code."""

    exit_code = RETRY


class InvalidInput(TrainerError):
    """The spec or the data is wrong; the message names the field, file or line."""

    exit_code = INVALID


class TransientError(TrainerError):
    """Storage or network trouble: the Job may retry."""

    exit_code = RETRY
