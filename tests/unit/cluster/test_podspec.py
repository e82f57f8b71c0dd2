"""How the process node resolves a pod spec: environment, downward API and volume files."""

from __future__ import annotations

import pytest

from tests.cluster.podspec import FileContent, PodSpecError, container_env, expand, field_value, volume_files

POD = {
    "metadata": {
        "name": "trainer-0",
        "namespace": "speech",
        "uid": "u-1",
        "annotations": {"training.deepspeech.dev/spec": '{"epochs": 3}'},
        "labels": {"b": "2", "a": "1"},
    },
    "spec": {"nodeName": "gpu-node-0", "serviceAccountName": "en-trainer"},
}
SECRETS = {("speech", "s3"): {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}}
CONFIG_MAPS = {("speech", "settings"): {"mode": "fast", "greeting": "hi"}}


def secrets(namespace, name):
    return SECRETS.get((namespace, name))


def config_maps(namespace, name):
    return CONFIG_MAPS.get((namespace, name))


def test_field_values_of_the_downward_api():
    assert field_value(POD, "metadata.annotations['training.deepspeech.dev/spec']") == '{"epochs": 3}'
    assert field_value(POD, "metadata.labels") == 'a="1"\nb="2"'
    assert field_value(POD, "spec.serviceAccountName") == "en-trainer"
    with pytest.raises(PodSpecError, match="unsupported fieldRef"):
        field_value(POD, "status.phase")


def test_expand_uses_earlier_variables_and_keeps_unknown_and_escaped_references():
    assert expand("$(A)-$(B)-$$(A)", {"A": "x"}) == "x-$(B)-$(A)"


def test_container_env_in_kubelet_order():
    container = {
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {
                "name": "AWS_ACCESS_KEY_ID",
                "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}},
            },
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "WHERE", "value": "$(POD)@$(CFG_mode)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "nope", "optional": True}}},
            {"name": "PATH", "value": "/override"},
        ],
    }
    env = container_env(POD, container, secrets, config_maps, base={"PATH": "/image", "HOME": "/tmp"})
    assert env == {
        "PATH": "/override",
        "HOME": "/tmp",
        "CFG_mode": "fast",
        "CFG_greeting": "hi",
        "AWS_ACCESS_KEY_ID": "id",
        "POD": "trainer-0",
        "WHERE": "trainer-0@fast",
    }


def test_missing_secret_key_stops_the_container():
    container = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "missing"}}}]}
    with pytest.raises(PodSpecError, match="couldn't find key missing in secret s3") as error:
        container_env(POD, container, secrets, config_maps, base={})
    assert error.value.reason == "CreateContainerConfigError"


def test_volume_files():
    def token(audience, seconds):
        return f"token-for-{audience or 'apiserver'}-{seconds}"

    assert volume_files(POD, {"emptyDir": {}}, secrets, config_maps, token) is None
    assert volume_files(
        POD,
        {"configMap": {"name": "settings", "items": [{"key": "mode", "path": "m"}]}},
        secrets,
        config_maps,
        token,
    ) == [FileContent("m", b"fast")]
    assert (
        volume_files(POD, {"secret": {"secretName": "absent", "optional": True}}, secrets, config_maps, token)
        == []
    )
    with pytest.raises(PodSpecError, match='secret "absent" not found'):
        volume_files(POD, {"secret": {"secretName": "absent"}}, secrets, config_maps, token)
    projected = {
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "settings", "items": [{"key": "greeting", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
            ]
        }
    }
    assert volume_files(POD, projected, secrets, config_maps, token) == [
        FileContent("token", b"token-for-apiserver-3607"),
        FileContent("ca.crt", b"hi"),
        FileContent("namespace", b"speech"),
    ]
