"""Pure parts of running a pod as local processes: environment and volume resolution from a pod spec.

The pod is a plain dict (the API's JSON); lookups of Secrets, ConfigMaps and tokens are passed in, so these
functions do no I/O and are unit-tested on their own.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Lookup = Callable[[str, str], Mapping[str, str] | None]  # (namespace, name) -> data, None if absent


class PodSpecError(Exception):
    """The pod cannot start, as a kubelet would report (e.g. CreateContainerConfigError)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class FileContent:
    path: str  # relative to the volume root
    data: bytes
    mode: int = 0o644


def field_value(pod: Mapping[str, Any], field_path: str) -> str:
    """The downward API: metadata.name, metadata.annotations['key'], spec.nodeName, status.podIP, ..."""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", field_path)
    if match:
        return (pod["metadata"].get(match.group(1)) or {}).get(match.group(2), "")
    simple = {
        "metadata.name": pod["metadata"].get("name", ""),
        "metadata.namespace": pod["metadata"].get("namespace", ""),
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if field_path in ("metadata.labels", "metadata.annotations"):
        items = pod["metadata"].get(field_path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    if field_path not in simple:
        raise PodSpecError("CreateContainerConfigError", f"unsupported fieldRef {field_path!r}")
    return simple[field_path]


def _key_ref(ref: Mapping[str, Any], kind: str, namespace: str, lookup: Lookup) -> str | None:
    data = lookup(namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise PodSpecError("CreateContainerConfigError", f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise PodSpecError(
            "CreateContainerConfigError", f"couldn't find key {ref['key']} in {kind} {ref['name']}"
        )
    return data[ref["key"]]


def expand(value: str, env: Mapping[str, str]) -> str:
    """$(VAR) references to earlier variables, as the kubelet expands them; $$(VAR) escapes."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    secrets: Lookup,
    config_maps: Lookup,
    base: Mapping[str, str],
) -> dict[str, str]:
    """Environment of one container: `base` (the image's ENV), then envFrom, then env, in order."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source or "configMapRef" in source:
            kind, ref, lookup = (
                ("Secret", source["secretRef"], secrets)
                if "secretRef" in source
                else ("ConfigMap", source["configMapRef"], config_maps)
            )
            data = lookup(namespace, ref["name"])
            if data is None and not ref.get("optional"):
                raise PodSpecError("CreateContainerConfigError", f'{kind.lower()} "{ref["name"]}" not found')
            env.update({prefix + k: v for k, v in (data or {}).items()})
    for item in container.get("env") or []:
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = expand(item.get("value", ""), env)
            continue
        if "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], "secret", namespace, secrets)
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], "configmap", namespace, config_maps)
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        else:
            raise PodSpecError(
                "CreateContainerConfigError", f"unsupported valueFrom for {item['name']}: {sorted(source)}"
            )
        if value is not None:
            env[item["name"]] = value
    return env


def _items(
    data: Mapping[str, str], items: list[Mapping[str, Any]] | None, default_mode: int
) -> list[FileContent]:
    if not items:
        return [FileContent(key, value.encode(), default_mode) for key, value in sorted(data.items())]
    return [
        FileContent(i["path"], data[i["key"]].encode(), i.get("mode", default_mode))
        for i in items
        if i["key"] in data
    ]


def _decoded(data: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def volume_files(
    pod: Mapping[str, Any],
    volume: Mapping[str, Any],
    secrets: Lookup,
    config_maps: Lookup,
    token: Callable[[str, int], str],
) -> list[FileContent] | None:
    """Files of a volume; None for an emptyDir (a fresh directory). `token(audience, seconds)` does a TokenRequest."""
    namespace = pod["metadata"]["namespace"]
    if "emptyDir" in volume:
        return None
    if "configMap" in volume:
        ref = volume["configMap"]
        return _keyed_files("configmap", ref, ref["name"], config_maps(namespace, ref["name"]))
    if "secret" in volume:
        ref = volume["secret"]
        return _keyed_files("secret", ref, ref["secretName"], secrets(namespace, ref["secretName"]))
    if "downwardAPI" in volume:
        return [_downward_file(pod, item) for item in volume["downwardAPI"].get("items") or []]
    if "projected" in volume:
        files: list[FileContent] = []
        for source in volume["projected"].get("sources") or []:
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                data = token(sat.get("audience", ""), sat.get("expirationSeconds", 3607))
                files.append(FileContent(sat["path"], data.encode(), 0o644))
            elif "configMap" in source:
                files += (
                    volume_files(pod, {"configMap": source["configMap"]}, secrets, config_maps, token) or []
                )
            elif "secret" in source:
                ref = {**source["secret"], "secretName": source["secret"]["name"]}
                files += volume_files(pod, {"secret": ref}, secrets, config_maps, token) or []
            elif "downwardAPI" in source:
                files += [_downward_file(pod, item) for item in source["downwardAPI"].get("items") or []]
        return files
    raise PodSpecError("ContainerCreating", f"unsupported volume type in {sorted(volume)}")


def _keyed_files(
    kind: str, ref: Mapping[str, Any], name: str, data: Mapping[str, str] | None
) -> list[FileContent]:
    """A configMap or secret volume: one file per key (or per listed item)."""
    if data is None:
        if ref.get("optional"):
            return []
        raise PodSpecError("ContainerCreating", f'{kind} "{name}" not found')
    return _items(data, ref.get("items"), ref.get("defaultMode", 0o644))


def _downward_file(pod: Mapping[str, Any], item: Mapping[str, Any]) -> FileContent:
    if "fieldRef" not in item:
        raise PodSpecError("ContainerCreating", f"unsupported downwardAPI item {item.get('path')}")
    return FileContent(
        item["path"], field_value(pod, item["fieldRef"]["fieldPath"]).encode(), item.get("mode", 0o644)
    )


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if data is None else _decoded(data)
