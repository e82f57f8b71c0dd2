"""The checkpoint store records the run's identity and refuses to restore another run's checkpoint."""

from __future__ import annotations

import json

import pytest
from deepspeech_trainer import s3 as s3mod
from deepspeech_trainer.checkpoint_store import CheckpointStore
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.run_identity import run_identity

from tests.integration.trainer.conftest import base_spec
from tests.integration.trainer.test_staging_checkpoints_s3 import _fake_checkpoint

pytestmark = pytest.mark.cluster


def _env(uid: str) -> dict[str, str]:
    return {"DST_NAMESPACE": "speech", "DST_NAME": "en", "DST_UID": uid, "DST_SPEC_HASH": "abc"}


def test_restore_refuses_a_checkpoint_of_another_cr_with_the_same_name(s3, bucket, tmp_path):
    spec = base_spec(bucket, ["s3://x/y.csv"])
    first = tmp_path / "old"
    _fake_checkpoint(first, [10], best=10)
    st = s3mod.Storage(s3mod.StorageConfig.from_spec({}))
    with st:
        # Both stores at the same folder: what an old trainer layout (<checkpoints>/<run id>/) gave a CR
        # deleted and created again under its name.
        old = CheckpointStore.for_spec(st, spec, first, "g1", identity=run_identity("g1", _env("uid-old")))
        old.sync(epochs_done=3)
        recorded = json.loads(
            s3.get_object(Bucket=bucket, Key="models/checkpoints/g1/run-state.json")["Body"].read()
        )
        assert recorded["identity"] == {
            "runId": "g1",
            "namespace": "speech",
            "name": "en",
            "uid": "uid-old",
            "specHash": "abc",
        }
        again = CheckpointStore.for_spec(
            st, spec, tmp_path / "new", "g1", identity=run_identity("g1", _env("uid-new"))
        )
        with pytest.raises(InvalidInput) as refused:
            again.restore()
        same = CheckpointStore.for_spec(
            st, spec, tmp_path / "same", "g1", identity=run_identity("g1", _env("uid-old"))
        )
        state = same.restore()
    message = str(refused.value)
    assert "uid uid-old" in message and "uid uid-new" in message and "refusing to restore" in message
    assert not (tmp_path / "new" / "checkpoint").exists(), "nothing of the other run was downloaded"
    assert state is not None and state.epochs_done == 3


def test_the_operator_run_path_names_the_store_folder(s3, bucket, tmp_path):
    spec = base_spec(bucket, ["s3://x/y.csv"])
    _fake_checkpoint(tmp_path / "c", [10], best=10)
    with s3mod.Storage(s3mod.StorageConfig.from_spec({})) as st:
        store = CheckpointStore.for_spec(st, spec, tmp_path / "c", "g1", run_path="en/g1-3f2a9c1b")
        store.sync(epochs_done=1)
    assert store.uri == f"s3://{bucket}/models/checkpoints/en/g1-3f2a9c1b/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/checkpoints/en/")["Contents"]]
    assert "models/checkpoints/en/g1-3f2a9c1b/latest" in keys
