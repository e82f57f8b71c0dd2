"""The imperative edge towards the API server (official kubernetes client, pinned below 37).

Every call is idempotent: create answers 409 with "adopt it if it is ours", delete answers 404 with "done".
That is what makes retrying them safe: every call has a timeout and is retried with backoff (timeouts.py),
and a create whose answer was lost meets its own object on the retry and adopts it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from . import api
from .accounts import account_of_token
from .children import drift_patch
from .observe import adoption_refusal
from .timeouts import CallPolicy, call_with_retries

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class ForeignObjectError(RuntimeError):
    """An object with our deterministic name exists but is not ours (observe.adoption_refusal)."""


def own_account() -> str | None:
    """The operator's own ServiceAccount ("<namespace>/<name>") from its in-cluster token; None outside."""
    try:
        return account_of_token(SERVICE_ACCOUNT_TOKEN.read_text())
    except OSError:
        return None


def load_config() -> None:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def _discard(response: Any) -> None:
    """Read and drop a raw (urllib3) response body. Only a fully read response returns its connection to
    the pool; a released but unread one is closed, and the next request pays a new TLS handshake."""
    response.drain_conn()
    response.release_conn()


class Cluster:
    def __init__(
        self,
        api_client: client.ApiClient | None = None,
        pool_size: int = 16,
        policy: CallPolicy | None = None,
    ) -> None:
        self.policy = policy or CallPolicy()
        if api_client is None:
            # One pooled connection per API thread (handlers.API_THREADS): the default pool (5 per CPU)
            # would open and discard extra connections under a burst of concurrent creates.
            configuration = client.Configuration.get_default_copy()
            configuration.connection_pool_maxsize = pool_size
            # Retries are ours (call_with_retries), not urllib3's: its default also retries reads on
            # timeouts, multiplying the time a call can take on a dead path.
            configuration.retries = False
            api_client = client.ApiClient(configuration)
        self.client = api_client
        self.batch = client.BatchV1Api(self.client)
        self.core = client.CoreV1Api(self.client)
        self.rbac = client.RbacAuthorizationV1Api(self.client)
        self.custom = client.CustomObjectsApi(self.client)

    def _drop_idle_connections(self) -> None:
        """After a timeout or a broken connection: close the pooled ones, so the retry opens a fresh one."""
        log.warning("API connection timed out or broke: closing pooled connections")
        self.client.rest_client.pool_manager.clear()

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        return call_with_retries(fn, self.policy, self._drop_idle_connections, what)

    def _options(self) -> dict[str, Any]:
        """Keyword arguments of every client call. `_preload_content=False`: the response is read raw (see
        _discard); the model deserialisation costs more CPU than the request itself."""
        return {"_request_timeout": self.policy.request_timeout, "_preload_content": False}

    # -- reads used for 409 adoption -------------------------------------------------------------------
    def _read(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind, ns, name = obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]
        readers = {
            "Job": self.batch.read_namespaced_job,
            "ServiceAccount": self.core.read_namespaced_service_account,
            "Role": self.rbac.read_namespaced_role,
            "RoleBinding": self.rbac.read_namespaced_role_binding,
        }
        return self._retrying(
            f"read {kind} {ns}/{name}", lambda: json.loads(readers[kind](name, ns, **self._options()).data)
        )

    def _create(self, obj: Mapping[str, Any]) -> None:
        kind, ns = obj["kind"], obj["metadata"]["namespace"]
        creators = {
            "Job": self.batch.create_namespaced_job,
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }
        self._retrying(
            f"create {kind} {ns}/{obj['metadata']['name']}",
            lambda: _discard(creators[kind](ns, obj, field_manager=api.OPERATOR_NAME, **self._options())),
        )

    def _patch(self, obj: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        kind, ns, name = obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]
        patchers = {
            "ServiceAccount": self.core.patch_namespaced_service_account,
            "Role": self.rbac.patch_namespaced_role,
            "RoleBinding": self.rbac.patch_namespaced_role_binding,
        }
        self._retrying(
            f"patch {kind} {ns}/{name}",
            lambda: _discard(
                patchers[kind](name, ns, body, field_manager=api.OPERATOR_NAME, **self._options())
            ),
        )

    def ensure(self, obj: Mapping[str, Any], owner_uid: str) -> str:
        """create_or_adopt, then the owned fields brought back to `obj` (children.drift_patch): 'created',
        'adopted' or 'updated'. For the trainer's objects, which must follow the spec (serviceAccountName)."""
        outcome, existing = self._create_or_read(obj, owner_uid)
        patch = drift_patch(existing, obj) if existing is not None else None
        if patch is None:
            return outcome
        self._patch(obj, patch)
        return "updated"

    def _create_or_read(self, obj: Mapping[str, Any], owner_uid: str) -> tuple[str, dict[str, Any] | None]:
        try:
            self._create(obj)
            return "created", None
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = self._read(obj)
        refusal = adoption_refusal(existing, obj, owner_uid)
        if refusal:
            raise ForeignObjectError(refusal)
        return "adopted", existing

    def create_or_adopt(self, obj: Mapping[str, Any], owner_uid: str) -> str:
        """'created', or 'adopted' when it already existed with us as controller; ForeignObjectError else."""
        return self._create_or_read(obj, owner_uid)[0]

    def delete_job(self, namespace: str, name: str, propagation: str) -> None:
        try:
            self._retrying(
                f"delete Job {namespace}/{name}",
                lambda: _discard(
                    self.batch.delete_namespaced_job(
                        name, namespace, propagation_policy=propagation, **self._options()
                    )
                ),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def poke(self, namespace: str, name: str, value: str) -> None:
        """Touch the CR's observed-child annotation so kopf delivers a CR event to the reconciler."""
        body = {"metadata": {"annotations": {api.ANNOTATION_OBSERVED: value}}}
        try:
            self._retrying(
                f"annotate {api.KIND} {namespace}/{name}",
                lambda: _discard(
                    self.custom.patch_namespaced_custom_object(
                        api.GROUP, api.VERSION, namespace, api.PLURAL, name, body, **self._options()
                    )
                ),
            )
        except ApiException as exc:
            if exc.status != 404:  # the CR is gone: nothing to wake
                raise
