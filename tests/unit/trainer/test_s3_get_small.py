"""s3.get_small signs its GETs itself (botocore's SigV4 query signer on a per-bucket URL read off one
presigned URL); the URL must be the one botocore's presigner would build for every addressing style."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from deepspeech_trainer import s3

KEYS = ("clips/a b+c.wav", "x/ü~!*'();:@&=+$,?#[].wav", "plain.wav")


@pytest.mark.parametrize(
    ("endpoint", "style", "region"),
    [
        ("http://127.0.0.1:9000", "auto", "us-east-1"),
        ("http://minio.local:9000", "virtual", "eu-west-1"),
        ("http://minio.local:9000", "auto", "eu-west-1"),
        ("https://s3.example.com", "path", "us-west-2"),
        (None, "auto", "eu-central-1"),
    ],
)
def test_signed_get_matches_botocore_presign(
    monkeypatch: pytest.MonkeyPatch, endpoint: str | None, style: str, region: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    with s3.Storage(s3.StorageConfig(endpoint=endpoint, region=region, addressing_style=style)) as storage:
        for key in KEYS:
            ours = s3._signed_get(storage, s3.S3Uri("my-bucket", key), {"If-Match": '"e"'})
            ref = storage.presigner.generate_presigned_url(
                "get_object", Params={"Bucket": "my-bucket", "Key": key, "IfMatch": '"e"'}, ExpiresIn=900
            )
            a, b = urlsplit(ours.url), urlsplit(ref)
            assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
            qa, qb = parse_qs(a.query), parse_qs(b.query)
            for field in ("X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Expires"):
                assert qa[field] == qb[field], field
            assert ours.headers["If-Match"] == '"e"'


def test_a_ranged_get_signs_its_range_as_botocore_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with s3.Storage(
        s3.StorageConfig(endpoint="http://127.0.0.1:9000", region="us-east-1", addressing_style="auto")
    ) as storage:
        ours = s3._signed_get(storage, s3.S3Uri("my-bucket", "a.wav"), {"Range": "bytes=0-4095"})
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
