"""The operator's side of docs/contract.md: values shared with the trainer image.

The trainer defines the same numbers in deepspeech_trainer.exitcodes; tests/unit/test_contract.py checks
the two equal without either distribution importing the other.
"""

from __future__ import annotations

EXIT_INVALID = 65
EXIT_RETRY = 75
CONTAINER_NAME = "trainer"
SPEC_ANNOTATION = "training.deepspeech.dev/spec"
SPEC_MOUNT_DIR = "/etc/deepspeech"
SPEC_FILE = f"{SPEC_MOUNT_DIR}/spec.json"
WORK_DIR = "/work"
