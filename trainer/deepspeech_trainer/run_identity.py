"""Who a run's checkpoint store belongs to: recorded in `run-state.json`, checked before a restore."""

from __future__ import annotations

from collections.abc import Mapping

from deepspeech_trainer.exitcodes import InvalidInput

IDENTITY_ENV = {
    "namespace": "DST_NAMESPACE",
    "name": "DST_NAME",
    "uid": "DST_UID",
    "specHash": "DST_SPEC_HASH",
}


def run_identity(run_id: str, env: Mapping[str, str]) -> dict[str, str] | None:
    """The run's identity from the operator's environment (docs/contract.md); None off-cluster."""
    if not env.get("DST_UID"):
        return None
    return {"runId": run_id, **{key: env.get(var, "") for key, var in IDENTITY_ENV.items()}}


def _describe_identity(identity: Mapping[str, str]) -> str:
    return (
        f"run {identity.get('runId')} of DeepSpeechTraining {identity.get('namespace')}/"
        f"{identity.get('name')} (uid {identity.get('uid')}, spec hash {identity.get('specHash')})"
    )


def check_identity(recorded: Mapping[str, str] | None, mine: Mapping[str, str] | None, uri: str) -> None:
    """Refuse a checkpoint another run wrote: a CR deleted and created again under the same name, or two
    CRs sharing output.checkpoints, must never train on (and then publish) each other's weights. A store
    without a recorded identity (an older trainer, or local use) is restored as before."""
    if not recorded or not mine or dict(recorded) == dict(mine):
        return
    raise InvalidInput(
        f"checkpoint {uri} was written by {_describe_identity(recorded)}, not by this "
        f"{_describe_identity(mine)}: refusing to restore it. Point spec.output.checkpoints elsewhere "
        "or delete that folder."
    )
