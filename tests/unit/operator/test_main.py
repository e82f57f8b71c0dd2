from __future__ import annotations

import getpass

from deepspeech_operator.__main__ import ensure_identity


def _no_passwd_entry() -> str:
    raise KeyError("getpwuid(): uid not found: 65532")


def test_identity_without_a_passwd_entry_comes_from_pod_id(monkeypatch):
    # The image's numeric USER under a runtime that adds no /etc/passwd entry (containerd, a real kubelet).
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    environ: dict[str, str] = {}
    ensure_identity(environ)
    assert environ["POD_ID"].startswith("uid")


def test_identity_is_kopfs_own_where_it_works(monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "operator")
    environ: dict[str, str] = {}
    ensure_identity(environ)
    assert environ == {}
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    environ = {"POD_ID": "deepspeech-operator-abc"}
    ensure_identity(environ)
    assert environ == {"POD_ID": "deepspeech-operator-abc"}
