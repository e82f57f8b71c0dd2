"""Upload DEST's files to an s3:// prefix in parallel, skipping objects that are already identical.

"Identical" = same size and same ETag, where the local ETag is computed the way S3 does for what
s3transfer sends (MD5 for a single PUT, MD5-of-part-MD5s "-N" for multipart), so a second upload of
an unchanged dataset costs one listing and zero PUTs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deepspeech_trainer import s3


@dataclass
class UploadStats:
    uploaded: int = 0
    skipped: int = 0
    bytes: int = 0


def local_etag(path: Path, threshold: int, chunk: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size < threshold:
            return hashlib.md5(fh.read(), usedforsecurity=False).hexdigest()
        parts = []
        while block := fh.read(chunk):
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def remote_listing(storage: s3.Storage, prefix: s3.S3Uri) -> dict[str, tuple[int, str]]:
    with s3.s3_errors(prefix, "DEST"):
        return {
            obj["Key"][len(prefix.key) :]: (int(obj["Size"]), s3.clean_etag(obj.get("ETag")))
            for obj in s3.list_objects(storage, prefix)
        }


def upload(
    storage: s3.Storage,
    root: Path,
    batches: Sequence[Sequence[str]],
    prefix: s3.S3Uri,
    on_file: Callable[[bool], None] = lambda skipped: None,
) -> UploadStats:
    """Upload `root/<name>` to `prefix/<name>`, batch after batch.

    Batches run in order (audio first, then the CSVs that reference it) so that at no moment does a
    CSV in the bucket point at audio that is not there yet.
    """
    prefix = prefix.folder
    remote = remote_listing(storage, prefix)
    cfg = storage.transfer_config
    stats = UploadStats()
    manager = storage.manager
    try:
        for batch in batches:
            futures = []
            for name in batch:
                path = root / name
                size = path.stat().st_size
                have = remote.get(name)
                if (
                    have
                    and have[0] == size
                    and have[1] == local_etag(path, cfg.multipart_threshold, cfg.multipart_chunksize)
                ):
                    stats.skipped += 1
                    on_file(True)
                    continue
                uri = prefix.child(name)
                futures.append((uri, size, manager.upload(str(path), uri.bucket, uri.key)))
            for uri, size, future in futures:
                with s3.s3_errors(uri, "DEST", user_data=False):
                    future.result()
                stats.uploaded += 1
                stats.bytes += size
                on_file(False)
    except KeyboardInterrupt:
        # Stop queued transfers now; finished objects stay and are skipped by the next run.
        manager.shutdown(cancel=True, cancel_msg="interrupted")
        storage.close()
        raise
    return stats
