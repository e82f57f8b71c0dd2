"""children.drift_patch: which fields of the trainer's objects the operator puts back."""

from __future__ import annotations

import copy

from deepspeech_operator.children import Owner, drift_patch, trainer_rbac

from .factories import cr, defaulted_spec


def _objects(**spec_overrides):
    body = cr(defaulted_spec(**spec_overrides))
    return {o["kind"]: o for o in trainer_rbac(Owner.of(body), body["spec"])}


def test_binding_subject_follows_service_account_name():
    old, new = _objects(serviceAccountName="first"), _objects(serviceAccountName="second")
    patch = drift_patch(old["RoleBinding"], new["RoleBinding"])
    assert patch == {"subjects": [{"kind": "ServiceAccount", "name": "second", "namespace": "speech"}]}
    assert drift_patch(new["RoleBinding"], new["RoleBinding"]) is None


def test_only_owned_fields_count():
    role = _objects()["Role"]
    live = copy.deepcopy(role)
    live["metadata"]["labels"]["extra"] = "x"  # someone's label: not ours to remove
    assert drift_patch(live, role) is None
    live["rules"] = []
    assert drift_patch(live, role) == {"rules": role["rules"]}
    account = _objects()["ServiceAccount"]
    assert drift_patch({**account, "automountServiceAccountToken": False}, account) == {
        "automountServiceAccountToken": True
    }
