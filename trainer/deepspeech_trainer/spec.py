"""Reading, defaulting and validating a DeepSpeechTraining spec inside the trainer.

The CRD's spec schema (`crd_schema.json`, generated from the operator's schema.py) is the one source of
the defaults and of every per-field rule. The operator hands the pod an already defaulted spec, but the
same code path serves local files (`deepspeech-trainer plan --spec my.yaml`), so the trainer applies the
schema's defaults the way the apiserver would and validates with jsonschema against the same schema: a
local plan refuses what `kubectl apply` would. After that come the CRD's cross-field CEL rules, which
jsonschema cannot run, and what only the trainer knows: each release's flags and augmentations.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml

from . import flags, s3
from .exitcodes import InvalidInput

Schema = Mapping[str, Any]

CRD_SCHEMA_FILE: Final = "crd_schema.json"


# ---------------------------------------------------------------------------------------------- defaulting


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Return a copy of `value` with the `default`s of an OpenAPI v3 (structural) schema applied.

    Mirrors apiserver defaulting: a property's default applies only when its parent object exists;
    a defaulted object gets its own properties' defaults in turn; `null` in a non-nullable field counts as
    absent (the apiserver prunes it before defaulting); arrays and maps default each element.
    """
    return _default(schema, copy.deepcopy(value))


def _default(schema: Schema, value: Any) -> Any:
    if isinstance(value, dict):
        props: Mapping[str, Schema] = schema.get("properties") or {}
        for key, sub in props.items():
            if key in value and value[key] is None and not sub.get("nullable", False):
                del value[key]
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value and value[key] is not None:
                value[key] = _default(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in value:
                if key not in props and value[key] is not None:
                    value[key] = _default(extra, value[key])
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            value = [_default(items, v) if v is not None else v for v in value]
    return value


@functools.cache
def crd_schema() -> Schema:
    """The CRD's `spec` schema shipped with the package (package data; `make generate` writes it)."""
    ref = resources.files(__package__).joinpath(CRD_SCHEMA_FILE)
    return json.loads(ref.read_text(encoding="utf-8"))


def default_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD's defaults, then the ones that depend on another field (a schema default cannot)."""
    out: dict[str, Any] = apply_defaults(crd_schema(), dict(spec))
    engine = out.get("deepspeech")
    if isinstance(engine, dict) and engine.get("version") is None:
        engine["version"] = flags.DEFAULT_VERSIONS.get(
            str(engine.get("engine")), flags.DEFAULT_VERSIONS["deepspeech"]
        )
    training, resources_ = out.get("training"), out.get("resources")
    if isinstance(training, dict) and isinstance(resources_, dict) and training.get("cudnn") is None:
        gpus = resources_.get("gpus")
        training["cudnn"] = isinstance(gpus, int) and gpus > 0
    output = out.get("output")
    if isinstance(output, dict) and isinstance(output.get("uri"), str) and not output.get("checkpoints"):
        output["checkpoints"] = checkpoints_uri(output)
    return out


def checkpoints_uri(output: Mapping[str, Any]) -> str:
    """`output.checkpoints`, by default the `checkpoints/` folder under `output.uri`."""
    return output.get("checkpoints") or str(output.get("uri", "")).rstrip("/") + "/checkpoints/"


# ---------------------------------------------------------------------------------------------- loading


def _parse(text: str, path: Path) -> Any:
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from exc


def extract_spec(document: Any, source: str = "spec") -> dict[str, Any]:
    """The spec itself, whether `document` is a bare spec or a whole DeepSpeechTraining object."""
    if not isinstance(document, dict):
        raise InvalidInput(f"{source}: expected a mapping, got {type(document).__name__}")
    if "spec" in document and ("kind" in document or "apiVersion" in document):
        kind = document.get("kind")
        if kind not in (None, "DeepSpeechTraining"):
            raise InvalidInput(f"{source}: kind is {kind!r}, expected DeepSpeechTraining")
        inner = document["spec"]
        if not isinstance(inner, dict):
            raise InvalidInput(f"{source}: .spec must be a mapping")
        return inner
    return document


def load_spec(path: Path) -> dict[str, Any]:
    """Read, default and validate the spec in `path` (YAML or JSON; a bare spec or a whole object)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read spec file: {exc.strerror or exc}") from exc
    spec = default_spec(extract_spec(_parse(text, Path(path)), str(path)))
    validate_spec(spec)
    return spec


# ---------------------------------------------------------------------------------------------- validation

# Flags the trainer derives from the spec (or from its own state): letting extraArgs set them would break
# resuming, checkpoint sync or the output layout. The value says which spec field to use instead.
MANAGED_FLAGS: Final[Mapping[str, str]] = {
    "train_files": "data.train",
    "dev_files": "data.dev",
    "test_files": "data.test",
    "alphabet_config_path": "data.alphabet",
    "scorer_path": "data.scorer",
    "lm_binary_path": "data.scorer",
    "lm_trie_path": "data.scorer",
    "checkpoint_dir": "output.checkpoints",
    "load_checkpoint_dir": "initFrom.checkpoint",
    "save_checkpoint_dir": "output.checkpoints",
    "load": "the trainer's resume logic",
    "load_train": "the trainer's resume logic",
    "load_evaluate": "the trainer's resume logic",
    "drop_source_layers": "initFrom.dropSourceLayers",
    "force_initialize_learning_rate": "the trainer's fine-tune logic",
    "epochs": "training.epochs",
    "learning_rate": "training.learningRate",
    "n_hidden": "training.nHidden",
    "train_batch_size": "training.batchSize.train",
    "dev_batch_size": "training.batchSize.dev",
    "test_batch_size": "training.batchSize.test",
    "dropout_rate": "training.dropoutRate",
    "early_stop": "training.earlyStop",
    "es_epochs": "training.earlyStop.epochs",
    "es_min_delta": "training.earlyStop.minDelta",
    "es_steps": "training.earlyStop.epochs",
    "reduce_lr_on_plateau": "training.reduceLROnPlateau",
    "plateau_epochs": "training.reduceLROnPlateau.epochs",
    "plateau_reduction": "training.reduceLROnPlateau.reduction",
    "augment": "training.augmentations",
    "train_cudnn": "training.cudnn",
    "use_cudnn_rnn": "training.cudnn",
    "load_cudnn": "training.cudnn",
    "automatic_mixed_precision": "training.mixedPrecision",
    "summary_dir": "the trainer's work dir",
    "export_dir": "output.uri",
    "export_tflite": "output.tflite",
    "test_output_file": "the trainer's work dir",
    "log_level": "the trainer (it must be two tokens)",
    "show_progressbar": "the trainer's progress parser",
    "skip_batch_test": "the trainer (it always skips Coqui STT's dummy batch)",
    "export_zip": "output.tflite (zip packaging is not supported)",
    "one_shot_infer": "nothing (one-shot inference is not supported)",
}

# Flags whose use crashes DeepSpeech 0.9.x with an AttributeError (its code and flag registry disagree).
CRASHING_0_9: Final = ("remove_export", "cache_for_epochs")

AUGMENTATIONS: Final[Mapping[str, str]] = {
    "overlay": "0.7.4",
    "reverb": "0.7.4",
    "resample": "0.7.4",
    "codec": "0.7.4",
    "volume": "0.7.4",
    "pitch": "0.7.4",
    "tempo": "0.7.4",
    "warp": "0.8.2",
    "frequency_mask": "0.7.4",
    "time_mask": "0.7.4",
    "dropout": "0.7.4",
    "add": "0.7.4",
    "multiply": "0.7.4",
}


def _field(path: Iterable[str | int]) -> str:
    out = "spec"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_TYPE_NAMES: Final[Mapping[str, str]] = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
    "array": "a list",
    "object": "an object",
}


def _bounds(schema: Schema) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open, high_open = schema.get("exclusiveMinimum", False), schema.get("exclusiveMaximum", False)
    if low is not None and high is not None and not (low_open or high_open):
        return f"between {low} and {high}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def _schema_problem(error: jsonschema.ValidationError) -> str:
    """One schema violation as `<field>: <what is wrong>`, in the words a user of kubectl would expect."""
    rule, arg, value = error.validator, error.validator_value, error.instance
    field = _field(error.absolute_path)
    if rule == "required":
        missing = next((name for name in arg if name not in value), arg[0])
        return f"{field}.{missing}: required"
    if rule == "type":
        return f"{field}: must be {_TYPE_NAMES.get(arg, arg)}, got {value!r}"
    if rule == "anyOf" and error.schema.get("x-kubernetes-int-or-string"):
        return f"{field}: must be an integer or a string, got {value!r}"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{field}: must be {_bounds(error.schema)}, got {value!r}"
    if rule == "minItems":
        return f"{field}: needs at least {arg} item{'s' if arg != 1 else ''}"
    if rule == "maxItems":
        return f"{field}: at most {arg} items, got {len(value)}"
    if rule == "minLength":
        return f"{field}: must be a non-empty string" if arg == 1 else f"{field}: at least {arg} characters"
    if rule == "maxLength":
        return f"{field}: at most {arg} characters, got {len(value)}"
    if rule == "pattern":
        return f"{field}: {value!r} does not match {arg}"
    if rule == "enum":
        return f"{field}: must be one of {', '.join(map(str, arg))}, got {value!r}"
    return f"{field}: {error.message}"


@functools.cache
def _validator() -> jsonschema.Draft4Validator:
    # Draft 4: OpenAPI v3.0 schemas write exclusiveMinimum/exclusiveMaximum as booleans, as Draft 4 does.
    return jsonschema.Draft4Validator(crd_schema())


def check_schema(spec: Mapping[str, Any]) -> None:
    """Every violation of the CRD's schema at once, each naming its field."""
    errors = sorted(_validator().iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise InvalidInput("; ".join(_schema_problem(e) for e in errors))


def check_uri_path(uri: str | None, field: str) -> None:
    """The CRD's CEL rule on every URI: no empty, '.' or '..' segment in an s3:// key or an https:// path."""
    if uri is None:
        return
    path = uri.split("://", 1)[1].partition("/")[2] if "://" in uri else uri
    problem = s3.path_segment_problem(path)
    if problem:
        raise InvalidInput(f"{field}: {uri!r} {problem}")


def _check_uris(spec: Mapping[str, Any]) -> None:
    data, output, init = spec["data"], spec["output"], spec.get("initFrom") or {}
    for split in ("train", "dev", "test"):
        for i, uri in enumerate(data.get(split) or []):
            check_uri_path(uri, f"spec.data.{split}[{i}]")
    for field, uri in (
        ("spec.data.alphabet", data.get("alphabet")),
        ("spec.data.scorer", data.get("scorer")),
        ("spec.initFrom.checkpoint", init.get("checkpoint")),
        ("spec.output.uri", output.get("uri")),
        ("spec.output.checkpoints", output.get("checkpoints")),
    ):
        check_uri_path(uri, field)


def _check_cross_field_rules(spec: Mapping[str, Any]) -> None:
    """The CRD's cross-field CEL rules (schema.spec_rules in the operator), for specs that did not pass
    through an apiserver."""
    ds, data, output = spec["deepspeech"], spec["data"], spec["output"]
    training, init = spec["training"], spec.get("initFrom")
    version = ds["version"]
    flags.check_release(ds["engine"], version)
    if flags.is_legacy(version):
        needs_07 = [
            ("spec.data.scorer", bool(data.get("scorer"))),
            ("spec.initFrom.dropSourceLayers", bool(init and init.get("dropSourceLayers"))),
            ("spec.training.reduceLROnPlateau", "reduceLROnPlateau" in training),
            ("spec.training.augmentations", bool(training.get("augmentations"))),
        ]
        for field, used in needs_07:
            if used:
                raise InvalidInput(f"{field}: needs DeepSpeech 0.7.4 or later, not {version}")
    for name in ("earlyStop", "reduceLROnPlateau"):
        if name in training and not data.get("dev"):
            raise InvalidInput(f"spec.training.{name}: needs spec.data.dev (it watches the validation loss)")
    for split in ("dev", "test"):
        if training["batchSize"][split] > 1 and not data.get(split):
            raise InvalidInput(f"spec.training.batchSize.{split} is above 1 but spec.data.{split} is empty")
    gpus = spec["resources"]["gpus"]
    if training["cudnn"] and gpus == 0:
        raise InvalidInput("spec.training.cudnn: the cuDNN LSTM needs a GPU, but spec.resources.gpus is 0")
    if training.get("mixedPrecision") and gpus == 0:
        raise InvalidInput("spec.training.mixedPrecision: needs spec.resources.gpus of at least 1")
    if spec.get("dryRun") and not spec.get("preflight", True):
        raise InvalidInput("spec.dryRun: needs spec.preflight (the dry run is the preflight)")
    if output.get("checkpoints") == output["uri"]:
        raise InvalidInput(
            "spec.output.checkpoints: must differ from spec.output.uri (models and checkpoints would mix)"
        )


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Raise InvalidInput naming the field for anything the trainer cannot run. Expects a defaulted spec."""
    check_schema(spec)
    _check_uris(spec)
    _check_cross_field_rules(spec)
    training = spec["training"]
    version = spec["deepspeech"]["version"]
    augmentations = training.get("augmentations") or []
    for i, aug in enumerate(augmentations):
        _check_augmentation(aug, f"spec.training.augmentations[{i}]", version)
    check_extra_args(version, training.get("extraArgs") or [], has_augmentations=bool(augmentations))


def _check_augmentation(aug: str, field: str, version: str) -> None:
    """The schema fixed the shape (`name` or `name[params]`); the names and their releases are the trainer's."""
    name = aug.split("[", 1)[0]
    since = AUGMENTATIONS.get(name)
    if since is None:
        raise InvalidInput(
            f"{field}: unknown augmentation {name!r} (known: {', '.join(sorted(AUGMENTATIONS))})"
        )
    if not flags.at_least(version, since):
        raise InvalidInput(f"{field}: augmentation {name!r} needs DeepSpeech {since} or later, not {version}")


def check_extra_args(version: str, args: list[str], *, has_augmentations: bool = False) -> None:
    field = "spec.training.extraArgs"
    for arg in flags.parse_args(version, args, field):
        name = arg.flag.name
        where = f"{field}[{arg.index}]"
        if name in MANAGED_FLAGS:
            raise InvalidInput(
                f"{where}: {arg.spelled} is set by the trainer; use {MANAGED_FLAGS[name]} instead"
            )
        if name in CRASHING_0_9 and flags.at_least(version, "0.9.3"):
            raise InvalidInput(
                f"{where}: {arg.spelled} crashes DeepSpeech {version} (AttributeError); remove it"
            )
        if name == "feature_cache" and has_augmentations:
            raise InvalidInput(
                f"{where}: --feature_cache with training.augmentations would reuse the first epoch's "
                "augmented features for every epoch"
            )
