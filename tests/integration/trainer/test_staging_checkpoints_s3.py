"""Staging cache and checkpoint store against the real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deepspeech_trainer import s3 as s3mod
from deepspeech_trainer.checkpoint_store import CheckpointStore
from deepspeech_trainer.init_checkpoint import fetch_init_checkpoint
from deepspeech_trainer.staging import stage, write_staged_csvs
from deepspeech_trainer.tf_state_file import state_paths

from tests.integration.trainer.conftest import base_spec, put_good_split

pytestmark = pytest.mark.cluster


def storage() -> s3mod.Storage:
    return s3mod.Storage(s3mod.StorageConfig.from_spec({}))


def test_second_staging_downloads_nothing_and_csvs_are_rewritten(s3, bucket, tmp_path):
    train = put_good_split(s3, bucket, "ds", "train", 12)
    spec = base_spec(bucket, [train])
    with storage() as st:
        first = stage(spec, st, tmp_path)
        assert (first.stats.objects, first.stats.downloaded, first.stats.cached) == (12, 12, 0)
        second = stage(spec, st, tmp_path)
        assert (second.stats.downloaded, second.stats.cached, second.stats.bytes) == (0, 12, 0)
        # a changed object (new ETag) is fetched again, the rest stay cached
        s3.put_object(
            Bucket=bucket,
            Key="ds/clips/train-000.wav",
            Body=s3.get_object(Bucket=bucket, Key="ds/clips/train-001.wav")["Body"].read(),
        )
        third = stage(spec, st, tmp_path)
        assert (third.stats.downloaded, third.stats.cached) == (1, 11)
    out = tmp_path / "train-0.csv"
    write_staged_csvs(third, {("train", 0): out})
    lines = out.read_text().splitlines()
    assert lines[0] == "wav_filename,wav_filesize,transcript" and len(lines) == 13
    wav, size, _ = lines[1].split(",", 2)
    assert Path(wav).is_absolute() and Path(wav).stat().st_size == int(size)


def _fake_checkpoint(directory: Path, steps: list[int], best: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for prefix in [f"train-{s}" for s in steps] + [f"best_dev-{best}"]:
        for suffix in (".data-00000-of-00001", ".index", ".meta"):
            (directory / (prefix + suffix)).write_bytes(f"{prefix}{suffix}".encode() * 100)
    newest = f"/old/pod/ckpt/train-{steps[-1]}"
    lines = [f'model_checkpoint_path: "{newest}"'] + [
        f'all_model_checkpoint_paths: "/old/pod/ckpt/train-{s}"' for s in steps
    ]
    (directory / "checkpoint").write_text("\n".join(lines) + "\n")
    (directory / "best_dev_checkpoint").write_text(
        f'model_checkpoint_path: "/old/pod/ckpt/best_dev-{best}"\nall_model_checkpoint_paths: "/old/pod/ckpt/best_dev-{best}"\n'
    )
    (directory / "flags.txt").write_text("--n_hidden=64\n")


def test_a_best_dev_keeps_the_loss_it_was_saved_with(s3, bucket, tmp_path):
    """Losses by prefix: a save whose loss line was not read yet waits; the stored best keeps its own loss
    when it is put back locally while the engine's newest (worse) loss is the last one read."""
    spec = base_spec(bucket, ["s3://x/y.csv"])
    local = tmp_path / "pod"
    _fake_checkpoint(local, [10], best=10)
    with storage() as st:
        store = CheckpointStore.for_spec(st, spec, local, "g8")
        store.sync(epochs_done=1, local_best_loss={"best_dev-10": 3.0})
        _fake_checkpoint(local, [10, 20], best=20)
        store.sync(epochs_done=2, local_best_loss={"best_dev-10": 3.0})  # best_dev-20's line not read yet
        assert (store.state.best_dev, store.state.best_dev_loss) == ("best_dev-10", 3.0)
        store.sync(epochs_done=2, local_best_loss={"best_dev-10": 3.0, "best_dev-20": 2.0})
        assert (store.state.best_dev, store.state.best_dev_loss) == ("best_dev-20", 2.0)
        _fake_checkpoint(local, [20], best=20)  # the same best_dev, put back after a worse one was read
        store.sync(epochs_done=2, local_best_loss={"best_dev-20": 2.0, "best_dev-30": 7.0})
        assert (store.state.best_dev, store.state.best_dev_loss) == ("best_dev-20", 2.0)


def test_sync_restore_rewrites_paths_and_prunes(s3, bucket, tmp_path):
    spec = base_spec(bucket, ["s3://x/y.csv"])
    first = tmp_path / "pod1"
    _fake_checkpoint(first, [10, 20], best=10)
    (first / "train-5.index").write_text("unreferenced")  # never uploaded
    with storage() as st:
        store = CheckpointStore.for_spec(st, spec, first, "g7")
        result = store.sync(epochs_done=1, local_best_loss=3.0)
        assert "train-5.index" not in result.uploaded and "train-20.index" in result.uploaded
        assert store.sync(epochs_done=1, local_best_loss=3.0).uploaded == []  # nothing new
        keys = {
            o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/checkpoints/g7/")["Contents"]
        }
        assert "models/checkpoints/g7/latest" in keys
        remote_state = (
            s3.get_object(Bucket=bucket, Key="models/checkpoints/g7/checkpoint")["Body"].read().decode()
        )
        assert state_paths(remote_state) == ["train-20", "train-10"]

        # DeepSpeech moves on: train-30 replaces train-10, a worse best_dev appears after a restart
        _fake_checkpoint(first, [20, 30], best=30)
        store.sync(epochs_done=2, local_best_loss=9.0)
        keys = {
            o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/checkpoints/g7/")["Contents"]
        }
        assert "models/checkpoints/g7/train-10.index" not in keys  # pruned
        assert "models/checkpoints/g7/best_dev-10.index" in keys  # the better best_dev is kept
        assert "models/checkpoints/g7/best_dev-30.index" not in keys

        second = tmp_path / "pod2"
        restored = CheckpointStore.for_spec(st, spec, second, "g7")
        state = restored.restore()
    assert state is not None and state.epochs_done == 2 and state.best_dev == "best_dev-10"
    assert state.best_dev_loss == 3.0
    assert state_paths((second / "checkpoint").read_text()) == [
        str(second / "train-30"),
        str(second / "train-20"),
    ]
    assert state_paths((second / "best_dev_checkpoint").read_text()) == [str(second / "best_dev-10")]
    assert (second / "train-30.data-00000-of-00001").read_bytes() == (
        first / "train-30.data-00000-of-00001"
    ).read_bytes()
    assert not (second / "train-5.index").exists()
    assert (
        json.loads(s3.get_object(Bucket=bucket, Key="models/checkpoints/g7/run-state.json")["Body"].read())[
            "epochs_done"
        ]
        == 2
    )


def test_restore_without_latest_marker_is_a_fresh_start(s3, bucket, tmp_path):
    with storage() as st:
        store = CheckpointStore.for_spec(st, base_spec(bucket, ["s3://x/y.csv"]), tmp_path / "c", "g1")
        assert store.restore() is None


def test_init_checkpoint_tarball_is_extracted_safely(s3, bucket, tmp_path):
    import io
    import tarfile

    src = tmp_path / "src" / "deepspeech-0.9.3-checkpoint"
    _fake_checkpoint(src, [5], best=5)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="deepspeech-0.9.3-checkpoint")
    s3.put_object(Bucket=bucket, Key="release/ck.tar.gz", Body=buf.getvalue())
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    s3.put_object(Bucket=bucket, Key="release/evil.tar.gz", Body=evil.getvalue())
    with storage() as st:
        got = fetch_init_checkpoint(
            st, f"s3://{bucket}/release/ck.tar.gz", tmp_path / "source", tmp_path / "dl"
        )
        assert got.load == "best" and got.flags["n_hidden"] == "64"
        assert state_paths((tmp_path / "source" / "best_dev_checkpoint").read_text()) == [
            str(tmp_path / "source" / "best_dev-5")
        ]
        from deepspeech_trainer.exitcodes import InvalidInput

        with pytest.raises(InvalidInput, match="outside"):
            fetch_init_checkpoint(st, f"s3://{bucket}/release/evil.tar.gz", tmp_path / "s2", tmp_path / "dl2")
        with pytest.raises(InvalidInput, match="does not exist"):
            fetch_init_checkpoint(st, f"s3://{bucket}/release/none.tar.gz", tmp_path / "s3", tmp_path / "dl3")
    assert not (tmp_path / "escape.txt").exists()


def test_pruning_never_deletes_what_the_store_still_points_at(s3, bucket, tmp_path):
    # A state file that cannot be read back (here: gone) once made every train-* file look unreferenced,
    # and pruning deleted them all while `latest` still pointed at them.
    spec = base_spec(bucket, ["s3://x/y.csv"])
    _fake_checkpoint(tmp_path / "pod", [10, 20], best=10)
    with storage() as st:
        store = CheckpointStore.for_spec(st, spec, tmp_path / "pod", "g1")
        store.sync(epochs_done=1, local_best_loss=3.0)
        s3.delete_object(Bucket=bucket, Key="models/checkpoints/g1/checkpoint")
        store.sync(epochs_done=1, local_best_loss=3.0)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/checkpoints/g1/")["Contents"]}
    assert {"models/checkpoints/g1/train-10.index", "models/checkpoints/g1/train-20.index"} <= keys


def test_restore_falls_back_to_the_newest_complete_checkpoint(s3, bucket, tmp_path):
    spec = base_spec(bucket, ["s3://x/y.csv"])
    pod = tmp_path / "pod"
    _fake_checkpoint(pod, [10], best=10)
    with storage() as st:
        store = CheckpointStore.for_spec(st, spec, pod, "g1")
        store.sync(epochs_done=1, local_best_loss=3.0)
        _fake_checkpoint(pod, [10, 20], best=10)
        store.sync(epochs_done=2, local_best_loss=3.0)
        # The newest checkpoint lost a file (a partial copy, a manual cleanup): restore must not fail on it.
        s3.delete_object(Bucket=bucket, Key="models/checkpoints/g1/train-20.index")
        restored = CheckpointStore.for_spec(st, spec, tmp_path / "pod2", "g1")
        state = restored.restore()
    assert state is not None and state.checkpoint == "train-10" and state.epochs_done == 1
    assert state_paths((tmp_path / "pod2" / "checkpoint").read_text()) == [
        str(tmp_path / "pod2" / "train-10")
    ]
    assert (tmp_path / "pod2" / "train-10.index").exists() and not (
        tmp_path / "pod2" / "train-20.index"
    ).exists()


def test_streamed_headers_come_in_chunks_and_read_each_object_once(s3, bucket, tmp_path):
    from deepspeech_trainer.staging import StageStats, stream_headers

    train = put_good_split(s3, bucket, "ds", "train", 4)
    text = s3.get_object(Bucket=bucket, Key="ds/train.csv")["Body"].read().decode()
    header, *rows = text.splitlines()
    # 12 rows over 4 objects, a missing one and a junk line; chunks of 5 rows/problems.
    lines = [header, *(rows * 3), "clips/none.wav,1,gone", "junk"]
    s3.put_object(Bucket=bucket, Key="ds/many.csv", Body=("\n".join(lines) + "\n").encode())
    spec = base_spec(bucket, [f"s3://{bucket}/ds/many.csv"], dev=[train, f"s3://{bucket}/ds/nope.csv"])
    stats = StageStats()
    with storage() as st:
        chunks = list(stream_headers(spec, st, tmp_path, stats, chunk_rows=5))
    train_chunks = [c for c in chunks if c.split == "train"]
    assert [len(c.rows) + len(c.problems) for c in train_chunks] == [5, 5, 4]
    got = [(r.line, r.info is not None, r.problem and r.problem[0]) for c in train_chunks for r in c.rows]
    assert got == [(n, n != 14, None if n != 14 else "file_missing") for n in range(2, 15)]
    assert [(p.line, p.code) for c in train_chunks for p in c.problems] == [(15, "csv_columns")]
    dev = [(c.index, len(c.rows), [p.code for p in c.problems]) for c in chunks if c.split == "dev"]
    assert dev == [(0, 4, []), (1, 0, ["csv_missing"])]
    assert stats.header_reads == 4, "rows sharing an object across chunks must not read it again"
    assert stats.list_requests == 2, "only chunks with objects not seen yet list their folder"
    assert not list((tmp_path / "csv-download").iterdir()), "downloaded CSVs are removed"
