"""DeepSpeech's command-line flags per supported version, as data.

One table: every flag carries the first version that has it and the first version that no longer has it
(read from each release's absl flag registry; tests/integration/engines/test_flag_tables.py checks it). The per-version sets are derived from it, so a rename is one edit, not five.
The test suite checks this table against the independently written lists of the DeepSpeech stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from .exitcodes import InvalidInput

VERSIONS: Final[tuple[str, ...]] = ("0.6.0", "0.6.1", "0.7.4", "0.8.2", "0.9.3")
# Coqui STT, DeepSpeech's maintained successor. Its releases (1.x) never collide with DeepSpeech's (0.x), so
# a version string alone names its flag dialect.
COQUI_VERSIONS: Final[tuple[str, ...]] = ("1.4.0",)
ENGINE_VERSIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"deepspeech": VERSIONS, "coqui-stt": COQUI_VERSIONS}
)
DEFAULT_VERSIONS: Final[Mapping[str, str]] = MappingProxyType({"deepspeech": "0.9.3", "coqui-stt": "1.4.0"})
# One lineage: Coqui STT 1.x continues 0.9.3, so "at least 0.7.4" holds for it too.
_LINEAGE: Final = VERSIONS + COQUI_VERSIONS


class FlagType(StrEnum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    MULTISTRING = "multistring"
    LIST = "list"  # Coqui STT: space-separated values after one flag (argparse nargs="*")


@dataclass(frozen=True)
class Flag:
    name: str
    type: FlagType
    since: str = "0.6.0"
    # First version without the flag; None = still present in the last release.
    until: str | None = None
    # absl aliases (`--scorer` for `--scorer_path`) are accepted on the command line like the flag itself.
    aliases: tuple[str, ...] = ()


# Short names keep the table one flag per line; N = integer (I is ambiguous).
B, N, F, S, M = FlagType.BOOL, FlagType.INT, FlagType.FLOAT, FlagType.STRING, FlagType.MULTISTRING
L = FlagType.LIST


def _f(name: str, type_: FlagType, since: str = "0.6.0", until: str | None = None, *aliases: str) -> Flag:
    return Flag(name, type_, since, until, tuple(aliases))


_TABLE: Final[tuple[Flag, ...]] = (
    # data
    _f("train_files", S),
    _f("dev_files", S),
    _f("test_files", S),
    _f("metrics_files", S, "0.7.4"),
    _f("read_buffer", S, "0.7.4"),
    _f("feature_cache", S),
    _f("cache_for_epochs", N, "0.7.4"),
    _f("feature_win_len", N),
    _f("feature_win_step", N),
    _f("audio_sample_rate", N),
    # augmentation: 0.6 had one flag per idea, 0.7 replaced them all by the repeatable --augment
    _f("augment", M, "0.7.4"),
    _f("data_aug_features_additive", F, "0.6.0", "0.7.4"),
    _f("data_aug_features_multiplicative", F, "0.6.0", "0.7.4"),
    _f("augmentation_spec_dropout_keeprate", F, "0.6.0", "0.7.4"),
    _f("augmentation_freq_and_time_masking", B, "0.6.0", "0.7.4"),
    _f("augmentation_freq_and_time_masking_freq_mask_range", N, "0.6.0", "0.7.4"),
    _f("augmentation_freq_and_time_masking_number_freq_masks", N, "0.6.0", "0.7.4"),
    _f("augmentation_freq_and_time_masking_time_mask_range", N, "0.6.0", "0.7.4"),
    _f("augmentation_freq_and_time_masking_number_time_masks", N, "0.6.0", "0.7.4"),
    _f("augmentation_speed_up_std", F, "0.6.0", "0.7.4"),
    _f("augmentation_pitch_and_tempo_scaling", B, "0.6.0", "0.7.4"),
    _f("augmentation_pitch_and_tempo_scaling_min_pitch", F, "0.6.0", "0.7.4"),
    _f("augmentation_pitch_and_tempo_scaling_max_pitch", F, "0.6.0", "0.7.4"),
    _f("augmentation_pitch_and_tempo_scaling_max_tempo", F, "0.6.0", "0.7.4"),
    # 0.6.1 only (from its absl registry): sparse image warp of the spectrogram
    _f("augmentation_sparse_warp", B, "0.6.1", "0.7.4"),
    _f("augmentation_sparse_warp_num_control_points", N, "0.6.1", "0.7.4"),
    _f("augmentation_sparse_warp_time_warping_para", N, "0.6.1", "0.7.4"),
    _f("augmentation_sparse_warp_interpolation_order", N, "0.6.1", "0.7.4"),
    _f("augmentation_sparse_warp_regularization_weight", F, "0.6.1", "0.7.4"),
    _f("augmentation_sparse_warp_num_boundary_points", N, "0.6.1", "0.7.4"),
    # global
    _f("epochs", N),
    _f("dropout_rate", F),
    _f("dropout_rate2", F),
    _f("dropout_rate3", F),
    _f("dropout_rate4", F),
    _f("dropout_rate5", F),
    _f("dropout_rate6", F),
    _f("relu_clip", F),
    _f("beta1", F),
    _f("beta2", F),
    _f("epsilon", F),
    _f("learning_rate", F),
    _f("train_batch_size", N),
    _f("dev_batch_size", N),
    _f("test_batch_size", N),
    _f("export_batch_size", N),
    _f("inter_op_parallelism_threads", N),
    _f("intra_op_parallelism_threads", N),
    _f("use_allow_growth", B),
    _f("use_cudnn_rnn", B, "0.6.0", "0.7.4"),
    _f("cudnn_checkpoint", S, "0.6.0", "0.7.4"),
    _f("load_cudnn", B, "0.7.4"),
    _f("train_cudnn", B, "0.7.4"),
    _f("automatic_mixed_precision", B),
    _f("limit_train", N),
    _f("limit_dev", N),
    _f("limit_test", N),
    _f("reverse_train", B, "0.8.2"),
    _f("reverse_dev", B, "0.8.2"),
    _f("reverse_test", B, "0.8.2"),
    # checkpoints
    _f("checkpoint_dir", S),
    _f("load_checkpoint_dir", S, "0.7.4"),
    _f("save_checkpoint_dir", S, "0.7.4"),
    _f("checkpoint_secs", N),
    _f("max_to_keep", N),
    _f("load", S, "0.6.0", "0.7.4"),
    _f("load_train", S, "0.7.4"),
    _f("load_evaluate", S, "0.7.4"),
    _f("drop_source_layers", N, "0.7.4"),
    # export
    _f("export_dir", S),
    _f("remove_export", B),
    _f("export_tflite", B),
    _f("n_steps", N),
    _f("export_zip", B),
    _f("export_file_name", S, "0.7.4"),
    _f("export_beam_width", N, "0.7.4"),
    _f("export_author_id", S, "0.7.4"),
    _f("export_model_name", S, "0.7.4"),
    _f("export_model_version", S, "0.7.4"),
    _f("export_contact_info", S, "0.7.4"),
    _f("export_license", S, "0.7.4"),
    _f("export_language", S),
    _f("export_min_ds_version", S, "0.7.4"),
    _f("export_max_ds_version", S, "0.7.4"),
    _f("export_description", S, "0.7.4"),
    # reporting
    _f("log_level", N),
    _f("show_progressbar", B),
    _f("log_placement", B),
    _f("report_count", N),
    _f("summary_dir", S),
    _f("test_output_file", S),
    # geometry
    _f("n_hidden", N),
    _f("layer_norm", B, "0.9.3"),
    # initialisation
    _f("random_seed", N),
    # early stopping: 0.7 changed the algorithm, so the 0.6 tuning flags have no successor
    _f("early_stop", B),
    _f("es_steps", N, "0.6.0", "0.7.4"),
    _f("es_mean_th", F, "0.6.0", "0.7.4"),
    _f("es_std_th", F, "0.6.0", "0.7.4"),
    _f("es_epochs", N, "0.7.4"),
    _f("es_min_delta", F, "0.7.4"),
    _f("reduce_lr_on_plateau", B, "0.7.4"),
    _f("plateau_epochs", N, "0.7.4"),
    _f("plateau_reduction", F, "0.7.4"),
    _f("force_initialize_learning_rate", B, "0.7.4"),
    # decoder
    _f("utf8", B, "0.6.0", "0.9.3"),
    _f("bytes_output_mode", B, "0.9.3"),
    _f("alphabet_config_path", S),
    _f("lm_binary_path", S, "0.6.0", "0.7.4", "lm"),
    _f("lm_trie_path", S, "0.6.0", "0.7.4", "trie"),
    _f("scorer_path", S, "0.7.4", None, "scorer"),
    _f("beam_width", N),
    _f("lm_alpha", F),
    _f("lm_beta", F),
    _f("cutoff_prob", F),
    _f("cutoff_top_n", N),
    # inference
    _f("one_shot_infer", S),
    # optimizer of lm_alpha/lm_beta (lm_optimizer.py shares the flag set)
    _f("lm_alpha_max", F, "0.7.4"),
    _f("lm_beta_max", F, "0.7.4"),
    _f("n_trials", N, "0.7.4"),
)


# Coqui STT 1.4.0, from its real `python -m coqui_stt_training.train --help` (types from its config
# dataclass). Not a superset of 0.9.3: limit_train/limit_dev and reverse_train/reverse_dev are gone.
_COQUI_1_4: Final[tuple[tuple[str, FlagType], ...]] = (
    ("train_files", L),
    ("dev_files", L),
    ("test_files", L),
    ("metrics_files", L),
    ("auto_input_dataset", S),
    ("vocab_file", S),
    ("read_buffer", S),
    ("feature_cache", S),
    ("cache_for_epochs", N),
    ("shuffle_batches", B),
    ("shuffle_start", N),
    ("shuffle_buffer", N),
    ("feature_win_len", N),
    ("feature_win_step", N),
    ("audio_sample_rate", N),
    ("normalize_sample_rate", B),
    ("augment", L),
    ("epochs", N),
    ("dropout_rate", F),
    ("dropout_rate2", F),
    ("dropout_rate3", F),
    ("dropout_rate4", F),
    ("dropout_rate5", F),
    ("dropout_rate6", F),
    ("relu_clip", F),
    ("beta1", F),
    ("beta2", F),
    ("epsilon", F),
    ("learning_rate", F),
    ("train_batch_size", N),
    ("dev_batch_size", N),
    ("test_batch_size", N),
    ("export_batch_size", N),
    ("skip_batch_test", B),
    ("inter_op_parallelism_threads", N),
    ("intra_op_parallelism_threads", N),
    ("use_allow_growth", B),
    ("load_cudnn", B),
    ("train_cudnn", B),
    ("automatic_mixed_precision", B),
    ("limit_test", N),
    ("reverse_test", B),
    ("checkpoint_dir", S),
    ("load_checkpoint_dir", S),
    ("save_checkpoint_dir", S),
    ("checkpoint_secs", N),
    ("max_to_keep", N),
    ("load_train", S),
    ("load_evaluate", S),
    ("drop_source_layers", N),
    ("export_dir", S),
    ("remove_export", B),
    ("export_tflite", B),
    ("export_quantize", B),
    ("export_savedmodel", B),
    ("n_steps", N),
    ("export_zip", B),
    ("export_file_name", S),
    ("export_beam_width", N),
    ("export_author_id", S),
    ("export_model_name", S),
    ("export_model_version", S),
    ("export_contact_info", S),
    ("export_license", S),
    ("export_language", S),
    ("export_min_stt_version", S),
    ("export_max_stt_version", S),
    ("export_description", S),
    ("log_level", N),
    ("show_progressbar", B),
    ("log_placement", B),
    ("report_count", N),
    ("summary_dir", S),
    ("test_output_file", S),
    ("n_hidden", N),
    ("layer_norm", B),
    ("random_seed", N),
    ("early_stop", B),
    ("es_epochs", N),
    ("es_min_delta", F),
    ("reduce_lr_on_plateau", B),
    ("plateau_epochs", N),
    ("plateau_reduction", F),
    ("force_initialize_learning_rate", B),
    ("bytes_output_mode", B),
    ("alphabet_config_path", S),
    ("scorer_path", S),
    ("beam_width", N),
    ("lm_alpha", F),
    ("lm_beta", F),
    ("cutoff_prob", F),
    ("cutoff_top_n", N),
    ("one_shot_infer", S),
    ("lm_alpha_max", N),
    ("lm_beta_max", N),
    ("n_trials", N),
)
_COQUI_TABLES: Final = {"1.4.0": MappingProxyType({n: Flag(n, t, "1.4.0") for n, t in _COQUI_1_4})}


def _index(version: str) -> int:
    try:
        return _LINEAGE.index(version)
    except ValueError:
        raise InvalidInput(
            f"spec.deepspeech.version: unsupported version {version!r}"
            f" (DeepSpeech: {', '.join(VERSIONS)}; Coqui STT: {', '.join(COQUI_VERSIONS)})"
        ) from None


def is_coqui(version: str) -> bool:
    """Coqui STT's dialect: `--flag true|false` booleans, space-separated file lists."""
    return version in COQUI_VERSIONS


def engine_of(version: str) -> str:
    _index(version)
    return "coqui-stt" if is_coqui(version) else "deepspeech"


def check_release(engine: str, version: str) -> None:
    """The version must be a release of the engine (the CRD's CEL rule, again for local spec files)."""
    known = ENGINE_VERSIONS.get(engine)
    if known is None:
        raise InvalidInput(
            f"spec.deepspeech.engine: unknown engine {engine!r} (known: {', '.join(ENGINE_VERSIONS)})"
        )
    if version not in known:
        raise InvalidInput(
            f"spec.deepspeech.version: {version!r} is not a {engine} release (supported: {', '.join(known)})"
        )


def _present(flag: Flag, version: str) -> bool:
    at = VERSIONS.index(version)
    return VERSIONS.index(flag.since) <= at and (flag.until is None or at < VERSIONS.index(flag.until))


def _build(version: str) -> MappingProxyType[str, Flag]:
    return MappingProxyType({f.name: f for f in _TABLE if _present(f, version)})


_BY_VERSION: Final = {v: _build(v) for v in VERSIONS} | _COQUI_TABLES


def flags_for(version: str) -> MappingProxyType[str, Flag]:
    """Flag name → Flag for one version (aliases not included as keys)."""
    _index(version)
    return _BY_VERSION[version]


def lookup(version: str, name: str) -> Flag | None:
    """The flag `name` (or alias) means in `version`, or None if DeepSpeech would reject it."""
    table = flags_for(version)
    if name in table:
        return table[name]
    for flag in table.values():
        if name in flag.aliases:
            return flag
    return None


def is_legacy(version: str) -> bool:
    """0.6.x: `DeepSpeech.py` dialect with a single `--checkpoint_dir` and LM/trie flags."""
    return _index(version) < _index("0.7.4")


def at_least(version: str, minimum: str) -> bool:
    return _index(version) >= _index(minimum)


_TRUE = frozenset({"true", "t", "1"})
_FALSE = frozenset({"false", "f", "0"})


def parse_bool(text: str) -> bool | None:
    """absl's spelling of booleans; None when absl would reject the value."""
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


def value_error(flag: Flag, value: str) -> str | None:
    """Why absl would reject `value` for `flag`, or None if it parses."""
    try:
        if flag.type is FlagType.INT:
            int(value)
        elif flag.type is FlagType.FLOAT:
            float(value)
        elif flag.type is FlagType.BOOL and parse_bool(value) is None:
            return f"{value!r} is not a boolean (use true or false)"
    except ValueError:
        return f"{value!r} is not a valid {flag.type.value}"
    return None


@dataclass(frozen=True)
class ParsedArg:
    """One flag occurrence in an argument list; `index` is where its name token stands."""

    index: int
    flag: Flag
    spelled: str
    value: str | bool


def parse_args(version: str, args: list[str], field: str) -> list[ParsedArg]:
    """Parse flag tokens the way absl would, rejecting what absl would reject or silently misread.

    Stricter than absl on purpose: a token that is not a flag is an error, because absl would ignore it
    (`--early_stop false` enables early stopping). Errors name `field[i]`.
    """
    parsed: list[ParsedArg] = []
    i = 0
    while i < len(args):
        start = i
        token = args[i]
        where = f"{field}[{i}]"
        if not isinstance(token, str):
            raise InvalidInput(f"{where}: must be a string, got {token!r}")
        if not token.startswith("--") or token == "--":
            hint = ""
            if parsed and parsed[-1].flag.type is FlagType.BOOL and parse_bool(token) is not None:
                prev = parsed[-1].spelled
                hint = f"; boolean flags take their value as {prev}={token.lower()} (DeepSpeech ignores a separate token)"
            raise InvalidInput(f"{where}: expected a flag starting with '--', got {token!r}{hint}")
        name, eq, value = token[2:].partition("=")
        flag = lookup(version, name)
        if flag is not None and is_coqui(version):
            i = _parse_coqui_arg(args, i, flag, name, eq, value, where, parsed)
            continue
        negated = False
        if flag is None and name.startswith("no") and not is_coqui(version):
            candidate = lookup(version, name[2:])
            if candidate is not None and candidate.type is FlagType.BOOL:
                flag, negated = candidate, True
        if flag is None:
            raise InvalidInput(f"{where}: unknown flag '--{name}' for {_product(version)} {version}")
        if negated:
            if eq:
                raise InvalidInput(f"{where}: '--{name}' takes no value")
            parsed.append(ParsedArg(i, flag, f"--{name[2:]}", False))
        elif flag.type is FlagType.BOOL:
            if eq:
                problem = value_error(flag, value)
                if problem:
                    raise InvalidInput(f"{where}: --{name}: {problem}")
                parsed.append(ParsedArg(i, flag, f"--{name}", bool(parse_bool(value))))
            else:
                parsed.append(ParsedArg(i, flag, f"--{name}", True))
        else:
            if not eq:
                if i + 1 >= len(args):
                    raise InvalidInput(f"{where}: --{name} needs a value (--{name}=VALUE)")
                i += 1
                value = args[i]
            problem = value_error(flag, value)
            if problem:
                raise InvalidInput(f"{where}: --{name}: {problem}")
            parsed.append(ParsedArg(start, flag, f"--{name}", value))
        i += 1
    return parsed


def _product(version: str) -> str:
    return "Coqui STT" if is_coqui(version) else "DeepSpeech"


def _parse_coqui_arg(
    args: list[str], i: int, flag: Flag, name: str, eq: str, value: str, where: str, parsed: list[ParsedArg]
) -> int:
    """One Coqui STT (argparse) flag at args[i]; returns the index after it.

    Booleans take a value token, `true` or `false` exactly (`--flag` alone, `--noflag` and `True` are
    errors); lists take every following token up to the next flag."""
    start = i
    if flag.type is FlagType.LIST:
        values = [value] if eq else []
        while not eq and i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
            i += 1
            values.append(args[i])
        parsed.append(ParsedArg(start, flag, f"--{name}", " ".join(values)))
        return i + 1
    if not eq:
        if i + 1 >= len(args) or str(args[i + 1]).startswith("--"):
            form = "true|false" if flag.type is FlagType.BOOL else "VALUE"
            raise InvalidInput(f"{where}: --{name} needs a value (Coqui STT: --{name} {form})")
        i += 1
        value = args[i]
    if flag.type is FlagType.BOOL:
        if value not in ("true", "false"):
            raise InvalidInput(
                f"{where}: --{name}: {value!r} is not a boolean (Coqui STT takes true or false)"
            )
        parsed.append(ParsedArg(start, flag, f"--{name}", value == "true"))
        return i + 1
    problem = value_error(flag, value)
    if problem:
        raise InvalidInput(f"{where}: --{name}: {problem}")
    parsed.append(ParsedArg(start, flag, f"--{name}", value))
    return i + 1
