"""SOURCE as a flat listing of relative names: a local folder or an s3:// prefix.

Each name carries a fingerprint (size + mtime, or size + ETag) that the journal keys conversions on,
so an edited recording is converted again and an unchanged one never is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from deepspeech_trainer import s3
from deepspeech_trainer.exitcodes import InvalidInput


class Source(Protocol):
    description: str

    def list(self) -> dict[str, str]: ...

    def read_text(self, name: str) -> str: ...

    def local(self, name: str) -> AbstractContextManager[Path]: ...


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{where}:{line}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


class LocalSource:
    def __init__(self, root: Path, exclude: Path | None = None) -> None:
        if not root.is_dir():
            raise InvalidInput(f"SOURCE {root}: not a folder")
        self.root = root.resolve()
        self.exclude = exclude.resolve() if exclude is not None else None
        self.description = str(root)

    def list(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for folder, dirs, files in os.walk(self.root, followlinks=True):
            here = Path(folder)
            # Hidden folders (.git, our own .prepare state) and DEST inside SOURCE are not data.
            dirs[:] = sorted(
                d for d in dirs if not d.startswith(".") and (here / d).resolve() != self.exclude
            )
            for name in files:
                if name.startswith("."):
                    continue
                path = here / name
                st = path.stat()
                out[path.relative_to(self.root).as_posix()] = f"{st.st_size}:{st.st_mtime_ns}"
        return out

    def read_text(self, name: str) -> str:
        return _decode((self.root / name).read_bytes(), name)

    @contextmanager
    def local(self, name: str) -> Iterator[Path]:
        yield self.root / name


class S3Source:
    """Objects under a prefix; audio is downloaded one item at a time into `cache` and removed after."""

    def __init__(self, storage: s3.Storage, prefix: s3.S3Uri, cache: Path) -> None:
        self.storage = storage
        self.prefix = prefix.folder
        self.cache = cache
        self.description = str(prefix)

    def _uri(self, name: str) -> s3.S3Uri:
        return self.prefix.child(name)

    def list(self) -> dict[str, str]:
        out: dict[str, str] = {}
        with s3.s3_errors(self.prefix, "SOURCE"):
            for obj in s3.list_objects(self.storage, self.prefix):
                name = obj["Key"][len(self.prefix.key) :]
                if name and not name.endswith("/") and not name.rsplit("/", 1)[-1].startswith("."):
                    out[name] = f"{obj['Size']}:{s3.clean_etag(obj.get('ETag'))}"
        if not out:
            raise InvalidInput(f"SOURCE {self.prefix}: no objects under this prefix")
        return out

    def read_text(self, name: str) -> str:
        uri = self._uri(name)
        with s3.s3_errors(uri, "SOURCE"):
            return _decode(s3.get_bytes(self.storage, uri), name)

    @contextmanager
    def local(self, name: str) -> Iterator[Path]:
        uri = self._uri(name)
        path = self.cache / name
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        try:
            with s3.s3_errors(uri, "SOURCE"):
                self.storage.client.download_file(uri.bucket, uri.key, str(part))
            os.replace(part, path)
            yield path
        finally:
            part.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
