"""S3 access shared by staging, checkpoints and publishing.

One botocore client per process (clients are thread-safe; resources are not, so none are handed out
to worker threads), its connection pool sized for the parallel transfers it will carry, adaptive
retries for throttling, and one s3transfer TransferManager reusing that client. Errors are mapped to
the contract's exit codes here, once: data the user named that is missing or forbidden is the user's
mistake (InvalidInput, never retried); everything else that goes wrong on the wire is transient.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.session
import botocore.utils
from boto3.s3.transfer import TransferConfig
from s3transfer.manager import TransferManager

from deepspeech_trainer.exitcodes import InvalidInput, TransientError

# Parallel transfers: 100 KB objects are latency-bound, so many requests in flight beat a few fast
# ones. The pool must be at least as large as the number of worker threads or requests queue for a
# connection (botocore logs "Connection pool is full").
DEFAULT_CONCURRENCY = 48
LARGE_TRANSFER_CONCURRENCY = 10
MiB = 1024 * 1024


@dataclass(frozen=True, order=True, slots=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Uri:
        """`name` below this URI taken as a folder (a trailing slash is implied)."""
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Uri(self.bucket, base + name.lstrip("/"))

    @property
    def folder(self) -> S3Uri:
        """The same URI as a folder prefix (ends with '/', or empty for the bucket root)."""
        if not self.key or self.key.endswith("/"):
            return self
        return S3Uri(self.bucket, self.key + "/")

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def parse_s3_uri(uri: str, field: str = "") -> S3Uri:
    """`s3://bucket/key` → S3Uri; anything else is an InvalidInput naming the spec field."""
    where = f"{field}: " if field else ""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidInput(f"{where}{uri!r} is not an s3://bucket/key URI")
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket or "/" in bucket or not _bucket_name_ok(bucket):
        raise InvalidInput(f"{where}{uri!r} has no valid bucket name")
    problem = path_segment_problem(key)
    if problem:
        raise InvalidInput(f"{where}{uri!r}: {problem}")
    return S3Uri(bucket, key)


def path_segment_problem(path: str) -> str | None:
    """Why `path` (an S3 key or a URL path) is not a plain relative path, or None.

    Empty, '.' and '..' segments are refused (a trailing '/' of a folder prefix is fine): AWS keeps a
    key such as '/tmp/x' verbatim, so `<cache>/<bucket>/<key>` would leave the work dir, and S3
    answers keys with '..' with InvalidRequest, which looks like storage trouble instead of a typo.
    The CRD's CEL rule on every URI says the same at admission.
    """
    segments = path.split("/")
    if segments[-1] == "":
        segments.pop()  # "a/b/" names a folder; "" the bucket root
    for segment in segments:
        if segment == "":
            return "has an empty path segment ('//', or a key starting with '/')"
        if segment in (".", ".."):
            return f"has a {segment!r} path segment; write the path without it"
    return None


def _bucket_name_ok(bucket: str) -> bool:
    # Loose S3 rules (3-63 chars of lowercase, digits, '.', '-', '_' for old buckets): enough to
    # catch typos such as "s3:///key" or a pasted https URL without rejecting real buckets.
    return 3 <= len(bucket) <= 63 and all(c.islower() or c.isdigit() or c in ".-_" for c in bucket)


@dataclass(frozen=True)
class StorageConfig:
    endpoint: str | None
    region: str
    addressing_style: str  # auto | path | virtual

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], env: Mapping[str, str] | None = None) -> StorageConfig:
        """spec.storage wins; the operator also sets AWS_ENDPOINT_URL/AWS_REGION from it."""
        env = os.environ if env is None else env
        storage = spec.get("storage") or {}
        endpoint = storage.get("endpoint") or env.get("AWS_ENDPOINT_URL") or None
        region = (
            storage.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        style = storage.get("addressingStyle") or "auto"
        if style not in ("auto", "path", "virtual"):
            raise InvalidInput(f"storage.addressingStyle: {style!r} is not one of auto, path, virtual")
        return cls(endpoint=endpoint, region=region, addressing_style=style)


class Storage:
    """A thread-safe S3 client plus a TransferManager sharing its connection pool."""

    def __init__(self, config: StorageConfig, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.config = config
        self.concurrency = concurrency
        botocore_config = botocore.config.Config(
            region_name=config.region,
            # +8: listing/HEAD/ranged-GET threads run beside the transfer threads.
            max_pool_connections=concurrency + 8,
            # "standard", not "adaptive": the adaptive client-side rate limiter took a third of the CPU of
            # header reads under load (bench/results/profiles/preflight.txt) and S3 throttling is rare.
            retries={"mode": "standard", "max_attempts": 8},
            s3={"addressing_style": config.addressing_style},
            connect_timeout=10,
            read_timeout=60,
            # Skip the extra HEAD s3transfer makes to learn the full-object checksum: we pass size
            # and ETag from the listing ourselves, and these checksums are not required by S3.
            response_checksum_validation="when_required",
            request_checksum_calculation="when_required",
        )
        # A private session: boto3's default session is not thread-safe to create clients from.
        core = botocore.session.get_session()
        # dateutil's parser took 30 % of a warm staging run (a LastModified per listed object); ISO
        # timestamps take the stdlib parser, anything else still goes to botocore's.
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_parse_timestamp)
        session = boto3.session.Session(botocore_session=core)
        self.client = session.client("s3", endpoint_url=config.endpoint, config=botocore_config)
        self.transfer_config = transfer_config(concurrency)
        self._manager: TransferManager | None = None
        self._session = session
        self.botocore_session = core
        self._botocore_config = botocore_config
        self._presigner: Any = None
        self._presigner_lock = threading.Lock()
        # s3_small's per-bucket route (URL shape, signing region, obstore client), resolved once.
        self.bucket_routes: dict[str, Any] = {}
        self.bucket_routes_lock = threading.Lock()

    @property
    def presigner(self) -> Any:
        """A client that only signs URLs (s3_small), SigV4 explicitly: left to itself, botocore presigns
        S3 URLs for a custom endpoint with the legacy SigV2, which AWS refuses in newer regions. It comes
        from the same session, so it shares the main client's credentials (and their refresh); the main
        client keeps the auth scheme its endpoint rules pick."""
        with self._presigner_lock:
            if self._presigner is None:
                self._presigner = self._session.client(
                    "s3",
                    endpoint_url=self.config.endpoint,
                    config=self._botocore_config.merge(botocore.config.Config(signature_version="s3v4")),
                )
            return self._presigner

    @property
    def manager(self) -> TransferManager:
        if self._manager is None:
            self._manager = TransferManager(self.client, self.transfer_config)
        return self._manager

    def close(self) -> None:
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_timestamp(value: Any) -> datetime.datetime:
    """botocore's timestamp parsing, with the common ISO 8601 form ('2026-12-03T13:11:20.123Z') on
    the stdlib's fast path; the result is an aware datetime either way."""
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    return botocore.utils.parse_timestamp(value)


def transfer_config(concurrency: int = DEFAULT_CONCURRENCY) -> TransferConfig:
    """Many small files in parallel; big files (checkpoints, models) as large multipart parts.

    16 MiB parts keep a 600 MB checkpoint at ~40 parts (S3 allows 10 000) and each part large
    enough that per-request overhead is small; the 64 MiB threshold means clips and small files
    go as one GET/PUT each.
    """
    return TransferConfig(
        multipart_threshold=64 * MiB,
        multipart_chunksize=16 * MiB,
        # One storage server saturates long before 48 parts in flight; more only adds contention.
        max_concurrency=min(concurrency, LARGE_TRANSFER_CONCURRENCY),
        max_io_queue=1000,
        io_chunksize=256 * 1024,
        use_threads=True,
    )


_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_FORBIDDEN = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "AccountProblem",
}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in _NOT_FOUND


def map_error(exc: BaseException, uri: S3Uri | str, field: str = "", user_data: bool = True) -> Exception:
    """Translate a botocore error into InvalidInput (user's mistake) or TransientError (retry).

    `user_data`: the object is something the spec named (a CSV, audio, the init checkpoint, the
    output bucket). Missing/forbidden objects we wrote ourselves are transient at worst.
    """
    where = f" ({field})" if field else ""
    code = error_code(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        if user_data and code in _NOT_FOUND:
            what = "bucket" if code == "NoSuchBucket" else "object"
            return InvalidInput(f"{uri}{where}: {what} does not exist ({code})")
        if user_data and (code in _FORBIDDEN or status == 403):
            return InvalidInput(f"{uri}{where}: access denied ({code}); check storage.secretRef credentials")
        return TransientError(f"{uri}{where}: S3 error {code or status}: {exc}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return InvalidInput(f"{uri}{where}: no S3 credentials (storage.secretRef or workload identity)")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return InvalidInput(f"{uri}{where}: {exc}")
    # EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, OSError and friends.
    return TransientError(f"{uri}{where}: storage unreachable: {exc}")


@contextmanager
def s3_errors(uri: S3Uri | str, field: str = "", user_data: bool = True) -> Iterator[None]:
    """Re-raise botocore/network errors from the block as the contract's errors."""
    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise  # local file trouble is not a storage problem
        raise map_error(exc, uri, field, user_data) from exc


def list_objects(
    storage: Storage, prefix: S3Uri, *, delimiter: str = "", start_after: str = "", stop_after: str = ""
) -> Iterator[dict[str, Any]]:
    """Objects under `prefix` in key order; stops early once a key > `stop_after` was seen."""
    kwargs: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    if start_after:
        kwargs["StartAfter"] = start_after
    paginator = storage.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(**kwargs):
        contents = page.get("Contents", [])
        yield from contents
        if stop_after and contents and contents[-1]["Key"] >= stop_after:
            return


def get_bytes(storage: Storage, uri: S3Uri, byte_range: str | None = None) -> bytes:
    kwargs: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
    if byte_range:
        kwargs["Range"] = byte_range
    return storage.client.get_object(**kwargs)["Body"].read()


def put_bytes(
    storage: Storage, uri: S3Uri, data: bytes, content_type: str = "application/octet-stream"
) -> None:
    storage.client.put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type)


def head(storage: Storage, uri: S3Uri) -> dict[str, Any] | None:
    """HEAD an object; None when it does not exist (other errors propagate)."""
    try:
        return storage.client.head_object(Bucket=uri.bucket, Key=uri.key)
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def clean_etag(etag: str | None) -> str:
    return (etag or "").strip('"')
