"""Which ServiceAccount may a trainer run as? Pure rules; the opted-in accounts come from a kopf index.

Kubernetes lets whoever may create pods in a namespace run them as any ServiceAccount there. The operator
creates pods for whoever may create a DeepSpeechTraining, who may have no right to create pods at all, so
it must not lend them an account on its own authority: spec.serviceAccountName names an account only
when someone who may edit ServiceAccounts in that namespace opted it in (the label
api.LABEL_TRAINER_ACCOUNT=true), and never the operator's own account, whatever its labels. Without
spec.serviceAccountName the operator creates the CR's own `<cr>-trainer` account, as before.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection

from . import api

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def own_account_refusal(namespace: str, account: str | None, own: str | None) -> str:
    """Non-empty when spec.serviceAccountName is the operator's own account (`own` = "<ns>/<name>"):
    a spec error no label can lift."""
    if account and own and own == f"{namespace}/{account}":
        return (
            f"spec.serviceAccountName {account!r} is the operator's own ServiceAccount; the trainer never "
            "runs as it (docs/security.md)"
        )
    return ""


def opt_in_refusal(namespace: str, account: str | None, opted_in: Collection[str]) -> str:
    """Non-empty while spec.serviceAccountName names an account that is absent or not opted in; the run
    waits, and goes on once an administrator labels the account."""
    if not account or account in opted_in:
        return ""
    return (
        f"spec.serviceAccountName {account!r}: ServiceAccount {namespace}/{account} does not exist or is "
        f"not opted in for trainers; someone who may edit ServiceAccounts in {namespace} can label it "
        f"{api.TRAINER_ACCOUNT_SELECTOR} (docs/security.md)"
    )


def account_of_token(token: str) -> str | None:
    """ "<namespace>/<name>" of a ServiceAccount token (the `sub` claim of its JWT), None if it is not one.
    Not verified: it is the operator's own mounted token, read only to recognise its own account."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(subject, str) or not subject.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = subject[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    return f"{namespace}/{name}" if sep and namespace and name else None
