"""s3_small.get_small against the real SeaweedFS: both transports (obstore, and the botocore-signed GET that
takes keys obstore refuses) return the bytes `client.get_object` returns and raise the error code and status
it raises, so staging's and preflight's error mapping sees what a client call would give it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest
from deepspeech_trainer import s3 as s3mod
from deepspeech_trainer import s3_small

OBSTORE_KEY = "clips/a b+c.wav"
FALLBACK_KEY = "clips/tab\tkey.wav"  # a control character: obstore's path type refuses it
BODY = bytes(range(256)) * 40


def client_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


def code_and_status(error: botocore.exceptions.ClientError) -> tuple[str, int]:
    return str(error.response["Error"]["Code"]), int(error.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.fixture
def storage(s3, bucket):
    for key in (OBSTORE_KEY, FALLBACK_KEY):
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
    with s3mod.Storage(s3mod.StorageConfig.from_spec({})) as storage:
        assert s3_small._route(storage, bucket).store is not None, "obstore is this server's transport"
        yield storage


@pytest.mark.parametrize("key", [OBSTORE_KEY, FALLBACK_KEY])
def test_bytes_and_ranges_as_the_client_returns_them(s3, bucket, storage, key):
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    uri = s3mod.S3Uri(bucket, key)
    assert s3_small.get_small(storage, uri, if_match=etag) == BODY
    assert s3_small.get_small(storage, uri, length=4096) == BODY[:4096]
    assert s3_small.get_small(storage, uri, length=len(BODY) * 2) == BODY  # a range past the end


STALE_ETAG = '"0123456789abcdef0123456789abcdef"'


@pytest.mark.parametrize("key", [OBSTORE_KEY, FALLBACK_KEY])
@pytest.mark.parametrize(
    ("bucket_of", "suffix", "if_match"),
    [("same", ".missing", None), ("same", "", STALE_ETAG), ("none", "", None)],
    ids=["missing key", "changed object", "missing bucket"],
)
def test_errors_as_the_client_raises_them(s3, bucket, storage, key, bucket_of, suffix, if_match):
    uri = s3mod.S3Uri(bucket if bucket_of == "same" else "no-such-bucket-here", key + suffix)
    params = {"IfMatch": if_match} if if_match else {}
    expected = client_error(s3.get_object, Bucket=uri.bucket, Key=uri.key, **params)
    got = client_error(s3_small.get_small, storage, uri, if_match=if_match)
    assert code_and_status(got) == code_and_status(expected)


def test_wrong_credentials_are_refused_as_the_client_is(bucket, storage, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    uri = s3mod.S3Uri(bucket, OBSTORE_KEY)
    with s3mod.Storage(s3mod.StorageConfig.from_spec({})) as wrong:
        expected = client_error(wrong.client.get_object, Bucket=uri.bucket, Key=uri.key)
        got = client_error(s3_small.get_small, wrong, uri, length=4096)
    assert code_and_status(got) == code_and_status(expected)
    assert "access denied" in str(s3mod.map_error(got, uri, "audio"))
