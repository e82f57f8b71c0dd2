"""The S3 server's ceiling for cold staging: a minimal client fetching every object under a prefix.

    python -m bench.ceiling --prefix s3://bucket/prefix/ --dest DIR [--concurrency 32]
    python -m bench.ceiling --prefix s3://bucket/prefix/ --range 4096 [--concurrency 32]

One asyncio loop, one aiohttp keep-alive pool, ListObjectsV2 then one GET per object written to
DEST/<key below the prefix>; SigV4 header signing per request with a hand-rolled signer whose derived
key is computed once (the per-request cost is two SHA-256 and one HMAC). No retries, no checksums, no
cache index: the least client CPU per request that still does the same work on the wire and on disk,
so the figures of the real clients read as a fraction of what this SeaweedFS on these cores can
deliver. Credentials, endpoint and region come from the same AWS_* environment as the other clients.
Prints one JSON line: {"files", "bytes", "seconds", "import_s"}.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402  (timing the imports is part of the figure)
import asyncio  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote, urlsplit  # noqa: E402

import aiohttp  # noqa: E402
import yarl  # noqa: E402

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class Signer:
    """SigV4 for bodiless S3 requests, path-style; the signing key is derived once per day."""

    def __init__(self, endpoint: str, key_id: str, secret: str, region: str) -> None:
        self.host = urlsplit(endpoint).netloc
        self.key_id, self.secret, self.region = key_id, secret, region
        self._day = ""
        self._key = b""

    def headers(self, method: str, path: str, query: str = "") -> dict[str, str]:
        now = datetime.datetime.now(datetime.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        if day != self._day:
            k = hmac.digest(("AWS4" + self.secret).encode(), day.encode(), "sha256")
            for part in (self.region, "s3", "aws4_request"):
                k = hmac.digest(k, part.encode(), "sha256")
            self._day, self._key = day, k
        scope = f"{day}/{self.region}/s3/aws4_request"
        canonical = (
            f"{method}\n{path}\n{query}\nhost:{self.host}\nx-amz-content-sha256:{_EMPTY_SHA256}\n"
            f"x-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{_EMPTY_SHA256}"
        )
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key, to_sign.encode(), "sha256").hexdigest()
        return {
            "x-amz-date": amz_date,
            "x-amz-content-sha256": _EMPTY_SHA256,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={self.key_id}/{scope}, "
            f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
        }


async def _list(
    session: aiohttp.ClientSession, endpoint: str, signer: Signer, bucket: str, prefix: str
) -> list[str]:
    keys: list[str] = []
    token = ""
    while True:
        params = [("list-type", "2"), ("prefix", prefix)]
        if token:
            params.append(("continuation-token", token))
        query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params))
        path = f"/{bucket}"
        url = yarl.URL(f"{endpoint}{path}?{query}", encoded=True)
        async with session.get(url, headers=signer.headers("GET", path, query)) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"list {bucket}/{prefix}: HTTP {resp.status}: {body[:300]!r}")
        root = ET.fromstring(body)
        keys += [c.findtext(f"{_NS}Key") or "" for c in root.iter(f"{_NS}Contents")]
        token = root.findtext(f"{_NS}NextContinuationToken") or ""
        if (root.findtext(f"{_NS}IsTruncated") or "false") != "true" or not token:
            return keys


async def fetch_all(
    endpoint: str,
    signer: Signer,
    bucket: str,
    prefix: str,
    dest: Path | None,
    concurrency: int,
    first_bytes: int = 0,
) -> tuple[int, int]:
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        keys = await _list(session, endpoint, signer, bucket, prefix)
        made: set[Path] = set()
        for key in keys if dest is not None else ():
            parent = (dest / key[len(prefix) :]).parent
            if parent not in made:
                parent.mkdir(parents=True, exist_ok=True)
                made.add(parent)
        extra = {"Range": f"bytes=0-{first_bytes - 1}"} if first_bytes else {}
        ok = (206, 200) if first_bytes else (200,)
        total = 0
        queue = iter(keys)

        async def worker() -> None:
            nonlocal total
            for key in queue:  # a shared iterator: no per-object task or future
                path = f"/{bucket}/{quote(key, safe='/~')}"
                url = yarl.URL(endpoint + path, encoded=True)
                headers = signer.headers("GET", path) | extra
                async with session.get(url, headers=headers) as resp:
                    body = await resp.read()
                    if resp.status not in ok:
                        raise RuntimeError(f"GET {key}: HTTP {resp.status}")
                if dest is not None:
                    (dest / key[len(prefix) :]).write_bytes(body)
                total += len(body)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(keys), total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True, help="s3://bucket/prefix/")
    parser.add_argument("--dest", help="folder to write the objects to (full reads)")
    parser.add_argument("--range", type=int, default=0, help="read only the first N bytes, write nothing")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if bool(args.dest) == bool(args.range):
        parser.error("give exactly one of --dest and --range")
    imported = time.perf_counter()
    bucket, _, prefix = args.prefix.removeprefix("s3://").partition("/")
    endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    signer = Signer(
        endpoint,
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    t0 = time.perf_counter()
    files, nbytes = asyncio.run(
        fetch_all(
            endpoint,
            signer,
            bucket,
            prefix,
            Path(args.dest) if args.dest else None,
            args.concurrency,
            args.range,
        )
    )
    out = {
        "files": files,
        "bytes": nbytes,
        "seconds": round(time.perf_counter() - t0, 3),
        "import_s": round(imported - _STARTED, 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
