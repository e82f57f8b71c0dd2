"""s3_small.get_small signs its GETs itself (botocore's SigV4 query signer on a per-bucket URL read off one
presigned URL); the URL must be the one botocore's presigner would build for every addressing style."""

from __future__ import annotations

import datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.exceptions
import obstore
import obstore.exceptions
import pytest
from deepspeech_trainer import s3, s3_small
from deepspeech_trainer.exitcodes import InvalidInput, TransientError

ENDPOINTS = [
    ("http://127.0.0.1:9000", "auto", "us-east-1"),
    ("http://minio.local:9000", "virtual", "eu-west-1"),
    ("http://minio.local:9000", "auto", "eu-west-1"),
    ("https://s3.example.com", "path", "us-west-2"),
    (None, "auto", "eu-central-1"),
    (None, "path", "ap-southeast-2"),
]


@pytest.fixture(autouse=True)
def example_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")


KEYS = ("clips/a b+c.wav", "x/ü~!*'();:@&=+$,?#[].wav", "plain.wav")


@pytest.mark.parametrize(("endpoint", "style", "region"), ENDPOINTS)
def test_signed_get_matches_botocore_presign(endpoint: str | None, style: str, region: str) -> None:
    with s3.Storage(s3.StorageConfig(endpoint=endpoint, region=region, addressing_style=style)) as storage:
        for key in KEYS:
            ours = s3_small._signed_get(storage, s3.S3Uri("my-bucket", key), {"If-Match": '"e"'})
            ref = storage.presigner.generate_presigned_url(
                "get_object", Params={"Bucket": "my-bucket", "Key": key, "IfMatch": '"e"'}, ExpiresIn=900
            )
            a, b = urlsplit(ours.url), urlsplit(ref)
            assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
            qa, qb = parse_qs(a.query), parse_qs(b.query)
            for field in ("X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Expires"):
                assert qa[field] == qb[field], field
            assert ours.headers["If-Match"] == '"e"'


def test_a_ranged_get_signs_its_range_as_botocore_does() -> None:
    with s3.Storage(
        s3.StorageConfig(endpoint="http://127.0.0.1:9000", region="us-east-1", addressing_style="auto")
    ) as storage:
        ours = s3_small._signed_get(storage, s3.S3Uri("my-bucket", "a.wav"), {"Range": "bytes=0-4095"})
        ref = storage.presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": "my-bucket", "Key": "a.wav", "Range": "bytes=0-4095"},
            ExpiresIn=900,
        )
        assert (
            parse_qs(urlsplit(ours.url).query)["X-Amz-SignedHeaders"]
            == parse_qs(urlsplit(ref).query)["X-Amz-SignedHeaders"]
        )
        assert ours.headers["Range"] == "bytes=0-4095"


@pytest.mark.parametrize(("endpoint", "style", "region"), ENDPOINTS)
def test_obstore_sends_each_get_where_botocore_would(endpoint: str | None, style: str, region: str) -> None:
    with s3.Storage(s3.StorageConfig(endpoint=endpoint, region=region, addressing_style=style)) as storage:
        store = s3_small._route(storage, "my-bucket").store
        assert store is not None
        for key in KEYS:
            ours = obstore.sign(store, "GET", key, datetime.timedelta(minutes=15))
            ref = storage.presigner.generate_presigned_url(
                "get_object", Params={"Bucket": "my-bucket", "Key": key}, ExpiresIn=900
            )
            a, b = urlsplit(ours), urlsplit(ref)
            assert (a.scheme, a.netloc, unquote(a.path)) == (b.scheme, b.netloc, unquote(b.path)), key
            qa, qb = parse_qs(a.query), parse_qs(b.query)
            # Same key id, day, signing region and service; the same session token.
            assert qa["X-Amz-Credential"][0].split("/")[2:] == qb["X-Amz-Credential"][0].split("/")[2:]
            assert qa["X-Amz-Credential"][0].split("/")[0] == "AKIDEXAMPLE"
            assert qa["X-Amz-Security-Token"] == qb["X-Amz-Security-Token"]


def test_only_the_bucket_url_shapes_obstore_builds_alike_get_an_obstore_endpoint() -> None:
    odd = s3_small.BucketUrl(base="https://gw.example.com/s3/my-bucket/", region="us-east-1", service="s3")
    assert odd.obstore_endpoint("my-bucket") is None
    path = s3_small.BucketUrl(base="http://h:9000/my-bucket/", region="us-east-1", service="s3")
    assert path.obstore_endpoint("my-bucket") == ("http://h:9000", False)
    virtual = s3_small.BucketUrl(
        base="https://my-bucket.s3.eu-west-1.amazonaws.com/", region="x", service="s3"
    )
    assert virtual.obstore_endpoint("my-bucket") == ("https://my-bucket.s3.eu-west-1.amazonaws.com", True)


def test_no_credentials_is_botocore_s_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = s3.StorageConfig(endpoint="http://127.0.0.1:9", region="us-east-1", addressing_style="auto")
    with s3.Storage(config) as storage, pytest.raises(botocore.exceptions.NoCredentialsError) as caught:
        s3_small.get_small(storage, s3.S3Uri("my-bucket", "a.wav"), length=4096)
    assert "no S3 credentials" in str(s3.map_error(caught.value, "s3://my-bucket/a.wav", "audio"))


@pytest.mark.parametrize(
    ("message", "code", "status"),
    [
        (
            "Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code>",
            "NoSuchBucket",
            404,
        ),
        (
            "Server returned non-2xx status code: 412 Precondition Failed: <Error><Code>PreconditionFailed</Code>",
            "PreconditionFailed",
            412,
        ),
        ("Server returned non-2xx status code: 403 Forbidden: ", "403", 403),
    ],
)
def test_obstore_errors_read_as_the_client_error_botocore_raises(
    message: str, code: str, status: int
) -> None:
    error = s3_small._as_botocore_error(FileNotFoundError(message))
    assert isinstance(error, botocore.exceptions.ClientError)
    assert s3.error_code(error) == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    mapped = s3.map_error(error, "s3://b/k", "audio")
    assert isinstance(mapped, InvalidInput if status in (403, 404) else TransientError)


def test_no_answer_at_all_is_a_transient_storage_error() -> None:
    error = s3_small._as_botocore_error(
        obstore.exceptions.GenericError("error sending request: connection refused")
    )
    assert isinstance(s3.map_error(error, "s3://b/k", "audio"), TransientError)
