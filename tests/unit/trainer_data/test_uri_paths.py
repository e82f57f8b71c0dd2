"""Empty, '.' and '..' segments in URIs: refused by the trainer, and by the CRD's CEL rule the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deepspeech_operator.schema import BAD_PATH_SEGMENT
from deepspeech_trainer.exitcodes import InvalidInput
from deepspeech_trainer.s3 import S3Uri, parse_s3_uri, path_segment_problem
from deepspeech_trainer.spec import default_spec, validate_spec
from deepspeech_trainer.staging import CacheIndex

BAD = [
    "s3://bucket//tmp/evil/train.csv",
    "s3://bucket/a//b.csv",
    "s3://bucket/a/../b.csv",
    "s3://bucket/../b.csv",
    "s3://bucket/./b.csv",
    "s3://bucket/a/.",
    "s3://bucket/a/..",
    "s3://bucket/a/../",
    "s3://bucket//",
]
GOOD = [
    "s3://bucket",
    "s3://bucket/",
    "s3://bucket/a/b.csv",
    "s3://bucket/a/",
    "s3://bucket/.hidden/x.csv",
    "s3://bucket/a..b/c...csv",
    "s3://bucket/a/.../b.csv",
]


@pytest.mark.parametrize("uri", BAD)
def test_trainer_refuses_bad_segments_naming_the_field(uri: str) -> None:
    with pytest.raises(InvalidInput, match=r"^spec\.data\.train\[0\]: .*path segment"):
        parse_s3_uri(uri, "spec.data.train[0]")


@pytest.mark.parametrize("uri", GOOD)
def test_plain_keys_and_folder_prefixes_are_fine(uri: str) -> None:
    assert parse_s3_uri(uri).bucket == "bucket"


@pytest.mark.parametrize("uri", BAD + GOOD + ["https://host/a//b.tar.gz", "https://host:8443/a/../b.tar.gz"])
def test_cel_rule_and_trainer_agree(uri: str) -> None:
    path = uri.split("://", 1)[1].partition("/")[2]
    assert bool(re.search(BAD_PATH_SEGMENT, uri)) == (path_segment_problem(path) is not None), uri


def test_cache_path_of_a_key_with_a_leading_slash_stays_inside(tmp_path: Path) -> None:
    # AWS keeps "/tmp/evil/train.csv" as the key; <root>/<bucket>/<key> would be /tmp/evil/train.csv.
    cache = CacheIndex(tmp_path / "cache")
    with pytest.raises(InvalidInput, match="empty path segment"):
        cache.local_path(S3Uri("bucket", "/tmp/evil/train.csv"))
    with pytest.raises(InvalidInput, match=r"'\.\.' path segment"):
        cache.local_path(S3Uri("bucket", "a/../../../etc/passwd"))
    assert cache.local_path(S3Uri("bucket", "a/b.wav")) == tmp_path / "cache" / "bucket" / "a" / "b.wav"


@pytest.mark.parametrize(
    ("section", "key", "value", "field"),
    [
        ("data", "train", ["s3://mdl/ok.csv", "s3://mdl//x.csv"], "spec.data.train[1]"),
        ("data", "alphabet", "s3://mdl/a/../alphabet.txt", "spec.data.alphabet"),
        ("output", "uri", "s3://mdl/./models/", "spec.output.uri"),
        ("output", "checkpoints", "s3://mdl/c//", "spec.output.checkpoints"),
        ("initFrom", "checkpoint", "https://example.com/r/../c.tar.gz", "spec.initFrom.checkpoint"),
    ],
)
def test_spec_validation_names_the_field(section: str, key: str, value, field: str) -> None:
    spec = {"data": {"train": ["s3://mdl/t.csv"]}, "output": {"uri": "s3://mdl/out/"}}
    spec.setdefault(section, {})[key] = value
    with pytest.raises(InvalidInput, match=rf"^{re.escape(field)}: .*path segment"):
        validate_spec(default_spec(spec))
