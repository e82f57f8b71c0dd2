"""Small GETs (clips, WAV headers): the same request as `client.get_object`, far less CPU per request.

Staging and preflight make thousands of GETs of ~100 KB or 4 KiB; through a botocore client call each
cost 2.1 ms of CPU (parameter validation, endpoint rules, ~20 event hooks, retry bookkeeping, response
parsing), on the cores the pod shares with everything else. Two transports, one behaviour:

- **obstore** (Rust `object_store`): signing, HTTP and retries run in Rust with the GIL released;
  0.27 ms of CPU per 4 KiB ranged GET here against 1.0 ms for a botocore-signed GET on botocore's HTTP
  session, about what the minimal asyncio client of bench/ceiling.py needs (docs/trainer.md).
- **botocore-signed GETs** on the client's own HTTP session, for what obstore would not send the
  same way: a bucket URL of a shape this module does not rebuild, keys obstore's path type refuses
  (control characters), no credentials (botocore's own error then).

Either way botocore decides what makes the request right: its presigner resolves the endpoint
(AWS_ENDPOINT_URL / spec), addressing style and signing region once per bucket (`bucket_url`), the
credentials are the Storage's botocore credential chain (refreshed as the client would), and proxies
and the CA bundle are botocore's. Errors come back as the ClientError a client call would raise
(code and status from the server's answer) or a BotoCoreError for a connection that never answered,
so callers map them with `s3.map_error` as before; throttling, 5xx and connection errors are retried
with capped exponential backoff like the client's "standard" retry mode.
"""

from __future__ import annotations

import datetime
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import botocore.auth
import botocore.awsrequest
import botocore.exceptions
import botocore.utils
import obstore
import obstore.exceptions
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.store import S3Store

from deepspeech_trainer.s3 import S3Uri, Storage

# Attempts per object (as the client's "standard" mode) and the backoff between them.
ATTEMPTS = 8
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 20.0
# obstore asks for credentials again this long before the expiry we report, so frozen botocore
# credentials are used for at most CREDENTIAL_TTL - 5 min (botocore itself refreshes ≥ 10 min early).
CREDENTIAL_TTL = datetime.timedelta(minutes=10)
_RETRIABLE_STATUS = {429, 500, 502, 503, 504}
_ERROR_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
_PROBE_KEY = "get-small-probe"
_PRESIGN_QUERY = {
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
}


@dataclass(frozen=True)
class BucketUrl:
    """Where botocore sends a bucket's GetObject and how it signs it, read off one presigned URL."""

    base: str  # scheme://host/[bucket/]: the object URL is base + the encoded key
    region: str  # the signing region botocore's endpoint rules chose
    service: str

    def obstore_endpoint(self, bucket: str) -> tuple[str, bool] | None:
        """(endpoint, virtual-hosted) that makes obstore build the same URLs, or None."""
        parts = urlsplit(self.base)
        root = f"{parts.scheme}://{parts.netloc}"
        if parts.path == "/":
            return root, True  # the bucket is in the host name
        if parts.path == f"/{bucket}/":
            return root, False
        return None


@dataclass(frozen=True)
class _Route:
    url: BucketUrl | None
    store: S3Store | None


def bucket_url(storage: Storage, bucket: str) -> BucketUrl | None:
    """botocore's endpoint, addressing style and signing region for `bucket`, resolved once; None when
    the presigned URL has a shape this module does not rebuild (every GET is then presigned)."""
    return _route(storage, bucket).url


def _route(storage: Storage, bucket: str) -> _Route:
    with storage.bucket_routes_lock:
        known = storage.bucket_routes.get(bucket)
    if known is not None:
        return known
    probe = storage.presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY}, ExpiresIn=900
    )
    parts = urlsplit(probe)
    query = parse_qs(parts.query)
    scope = (query.get("X-Amz-Credential") or [""])[0].split("/")
    url: BucketUrl | None = None
    if parts.path.endswith("/" + _PROBE_KEY) and set(query) <= _PRESIGN_QUERY and len(scope) == 5:
        base = urlunsplit((parts.scheme, parts.netloc, parts.path[: -len(_PROBE_KEY)], "", ""))
        url = BucketUrl(base=base, region=scope[2], service=scope[3])
    route = _Route(url=url, store=_object_store(storage, bucket, url))
    with storage.bucket_routes_lock:
        return storage.bucket_routes.setdefault(bucket, route)


def _object_store(storage: Storage, bucket: str, url: BucketUrl | None) -> S3Store | None:
    """An obstore client that sends `bucket`'s GETs where botocore sends them, or None."""
    endpoint = url.obstore_endpoint(bucket) if url is not None and url.service == "s3" else None
    if url is None or endpoint is None:
        return None
    try:
        # The botocore session's credential chain (env, profile, web identity, instance role), frozen
        # per refresh, so both transports sign with the same, refreshed, credentials.
        credentials = Boto3CredentialProvider(storage.botocore_session, ttl=CREDENTIAL_TTL)
    except ValueError:
        return None  # no credentials: botocore raises its own NoCredentialsError
    root, virtual = endpoint
    client_options: dict[str, Any] = {
        "allow_http": root.startswith("http://"),
        "connect_timeout": "10s",
        "timeout": "120s",  # the whole request: up to 8 MiB (staging.SMALL_OBJECT) at ≥ 70 KB/s
    }
    proxies = storage.client.meta.config.proxies or botocore.utils.get_environ_proxies(root)
    proxy = proxies.get(urlsplit(root).scheme) if proxies else None
    if proxy:
        client_options["proxy_url"] = proxy
    ca_bundle = storage.botocore_session.get_config_variable("ca_bundle")  # AWS_CA_BUNDLE, profile
    if ca_bundle:
        try:
            client_options["root_certificate"] = Path(ca_bundle).read_bytes()
        except OSError:
            return None  # botocore reports the unreadable bundle in its own words
    return S3Store(
        bucket,
        endpoint=root,
        region=url.region,
        virtual_hosted_style_request=virtual,
        credential_provider=credentials,
        client_options=client_options,  # type: ignore[arg-type]
        retry_config={
            "max_retries": ATTEMPTS - 1,
            "backoff": {
                "init_backoff": datetime.timedelta(seconds=BACKOFF_FIRST_S),
                "max_backoff": datetime.timedelta(seconds=BACKOFF_MAX_S),
                "base": 2,
            },
            "retry_timeout": datetime.timedelta(minutes=3),
        },
    )


def get_small(storage: Storage, uri: S3Uri, if_match: str | None = None, length: int | None = None) -> bytes:
    """The object's bytes (its first `length` bytes when given), only if its ETag is `if_match`."""
    store = _route(storage, uri.bucket).store
    if store is not None:
        try:
            if if_match is None and length is not None:
                return bytes(obstore.get_range(store, uri.key, start=0, end=length))
            options: dict[str, Any] = {}
            if if_match is not None:
                options["if_match"] = if_match
            if length is not None:
                options["range"] = (0, length)
            return bytes(obstore.get(store, uri.key, options=options).bytes())  # type: ignore[arg-type]
        except ValueError:
            pass  # a key obstore's path type refuses (control characters): botocore sends it
        except (OSError, obstore.exceptions.BaseError) as exc:
            raise _as_botocore_error(exc) from exc
    headers: dict[str, str] = {}
    if if_match is not None:
        headers["If-Match"] = if_match
    if length is not None:
        headers["Range"] = f"bytes=0-{length - 1}"
    return _get_signed(storage, uri, headers)


def _as_botocore_error(exc: BaseException) -> Exception:
    """obstore's error as the one a botocore client call would have raised."""
    text = str(exc)
    status_match = _STATUS.search(text)
    if status_match is None:
        # No answer from the server (refused, reset, timed out) after the retries.
        return botocore.exceptions.HTTPClientError(error=exc)
    code_match = _ERROR_CODE.search(text)
    status = int(status_match.group(1))
    error = {
        "Error": {"Code": code_match.group(1) if code_match else str(status), "Message": text[:500]},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(error, "GetObject")


def _signed_get(storage: Storage, uri: S3Uri, headers: dict[str, str]) -> Any:
    """A prepared GET of `uri`, signed in its query string as botocore's presigner would sign it."""
    where = bucket_url(storage, uri.bucket)
    credentials = storage.botocore_session.get_credentials()
    if where is None or credentials is None:
        params: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
        if "If-Match" in headers:
            params["IfMatch"] = headers["If-Match"]
        if "Range" in headers:
            params["Range"] = headers["Range"]
        url = storage.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=900)
        return botocore.awsrequest.AWSRequest(method="GET", url=url, headers=headers).prepare()
    # The key encoded as botocore's serializer encodes a greedy path label.
    url = where.base + botocore.utils.percent_encode(uri.key, safe="/~")
    request = botocore.awsrequest.AWSRequest(method="GET", url=url, headers=dict(headers))
    # Frozen per request: a refreshable credential (web identity, instance role) renews itself here.
    signer = botocore.auth.S3SigV4QueryAuth(
        credentials.get_frozen_credentials(), where.service, where.region, expires=900
    )
    signer.add_auth(request)
    return request.prepare()


def _get_signed(storage: Storage, uri: S3Uri, headers: dict[str, str]) -> bytes:
    """GET over the client's own HTTP session (its pool, proxies, CA bundle, timeouts); the headers
    are signed into the URL (X-Amz-SignedHeaders), so they are sent exactly as given."""
    session = storage.client._endpoint.http_session
    for attempt in range(ATTEMPTS):
        last = attempt == ATTEMPTS - 1
        request = _signed_get(storage, uri, headers)
        try:
            response = session.send(request)
        except botocore.exceptions.HTTPClientError:
            if last:
                raise
        else:
            if response.status_code in (200, 206):
                return bytes(response.content)
            body = response.content.decode("utf-8", "replace")
            match = _ERROR_CODE.search(body)
            code = match.group(1) if match else str(response.status_code)
            if response.status_code not in _RETRIABLE_STATUS or last:
                error = {
                    "Error": {"Code": code, "Message": body[:500]},
                    "ResponseMetadata": {"HTTPStatusCode": response.status_code},
                }
                raise botocore.exceptions.ClientError(error, "GetObject")
        time.sleep(random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt)))
    raise AssertionError("unreachable")  # the last attempt returns or raises
