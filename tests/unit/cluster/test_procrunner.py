"""Pure helpers of the process node: where a pod root is staged, and kubectl-logs line selection."""

from __future__ import annotations

import pytest

from tests.cluster.kubeletlogs import select_lines
from tests.cluster.podspec import PodSpecError
from tests.cluster.procrunner import mount_targets, staging_dir


def test_staging_avoids_every_mount_target():
    assert staging_dir(["/work", "/dev/termination-log"], "u1") == "/tmp/.dso-pod-u1"
    assert staging_dir(["/tmp", "/etc/deepspeech"], "u1") == "/var/tmp/.dso-pod-u1"
    assert staging_dir(["/tmp/", "/var"], "u1") == "/mnt/.dso-pod-u1"


def test_a_root_mount_leaves_nowhere_to_stage():
    with pytest.raises(PodSpecError, match="cover every staging location"):
        staging_dir(["/"], "u1")


def test_mount_targets_end_with_the_termination_message_path():
    container = {"volumeMounts": [{"name": "w", "mountPath": "/work"}], "terminationMessagePath": "/tmp/msg"}
    assert mount_targets(container) == ["/work", "/tmp/msg"]
    assert mount_targets({}) == ["/dev/termination-log"]


def test_select_lines_tail_and_limit():
    data = b"one\ntwo\nthree\n"
    assert select_lines(data, None, None) == data
    assert select_lines(data, 2, None) == b"two\nthree\n"
    assert select_lines(data, 0, None) == b""
    assert select_lines(data, None, 5) == b"one\nt"
