"""The stand-in's own idea of DeepSpeech's flags and of absl's parsing, written from the reference (§2, §3)
without looking at deepspeech_trainer.flags, so each catches the other's mistakes.

Stdlib only: this module is imported both as `tests.standin.standin_flags` and as a top-level module by
the stand-in programs.
"""

from __future__ import annotations

import os

# v0.9.3, grouped by type (91 flags).
_V093 = {
    "bool": """use_allow_growth load_cudnn train_cudnn automatic_mixed_precision reverse_train reverse_dev
        reverse_test remove_export export_tflite export_zip show_progressbar log_placement layer_norm
        early_stop reduce_lr_on_plateau force_initialize_learning_rate bytes_output_mode""",
    "int": """cache_for_epochs feature_win_len feature_win_step audio_sample_rate epochs train_batch_size
        dev_batch_size test_batch_size export_batch_size inter_op_parallelism_threads
        intra_op_parallelism_threads limit_train limit_dev limit_test checkpoint_secs max_to_keep
        drop_source_layers n_steps export_beam_width log_level report_count n_hidden random_seed es_epochs
        plateau_epochs beam_width cutoff_top_n n_trials""",
    "float": """dropout_rate dropout_rate2 dropout_rate3 dropout_rate4 dropout_rate5 dropout_rate6 relu_clip
        beta1 beta2 epsilon learning_rate es_min_delta plateau_reduction lm_alpha lm_beta cutoff_prob
        lm_alpha_max lm_beta_max""",
    "str": """train_files dev_files test_files metrics_files read_buffer feature_cache checkpoint_dir
        load_checkpoint_dir save_checkpoint_dir load_train load_evaluate export_dir export_file_name
        export_author_id export_model_name export_model_version export_contact_info export_license
        export_language export_min_ds_version export_max_ds_version export_description summary_dir
        test_output_file alphabet_config_path scorer_path one_shot_infer""",
    "multi": "augment",
}

# v0.6.0, written out in full rather than derived: it differs too much.
_V060 = {
    "bool": """use_allow_growth use_cudnn_rnn automatic_mixed_precision remove_export export_tflite export_zip
        show_progressbar log_placement early_stop utf8 augmentation_freq_and_time_masking
        augmentation_pitch_and_tempo_scaling""",
    "int": """feature_win_len feature_win_step audio_sample_rate epochs train_batch_size dev_batch_size
        test_batch_size export_batch_size inter_op_parallelism_threads intra_op_parallelism_threads
        limit_train limit_dev limit_test checkpoint_secs max_to_keep n_steps log_level report_count n_hidden
        random_seed es_steps beam_width cutoff_top_n augmentation_freq_and_time_masking_freq_mask_range
        augmentation_freq_and_time_masking_number_freq_masks augmentation_freq_and_time_masking_time_mask_range
        augmentation_freq_and_time_masking_number_time_masks""",
    "float": """dropout_rate dropout_rate2 dropout_rate3 dropout_rate4 dropout_rate5 dropout_rate6 relu_clip
        beta1 beta2 epsilon learning_rate es_mean_th es_std_th lm_alpha lm_beta cutoff_prob
        data_aug_features_additive data_aug_features_multiplicative augmentation_spec_dropout_keeprate
        augmentation_speed_up_std augmentation_pitch_and_tempo_scaling_min_pitch
        augmentation_pitch_and_tempo_scaling_max_pitch augmentation_pitch_and_tempo_scaling_max_tempo""",
    "str": """train_files dev_files test_files feature_cache checkpoint_dir load cudnn_checkpoint export_dir
        export_language summary_dir test_output_file alphabet_config_path lm_binary_path lm_trie_path
        one_shot_infer""",
    "multi": "",
}


def _expand(groups: dict[str, str]) -> dict[str, str]:
    return {name: kind for kind, names in groups.items() for name in names.split()}


def _flags(version: str) -> dict[str, str]:
    if version == "0.6.0":
        return _expand(_V060)
    if version == "0.6.1":
        # 0.6.1 added a sparse-warp augmentation (its own absl registry).
        return _expand(_V060) | {
            "augmentation_sparse_warp": "bool",
            "augmentation_sparse_warp_num_control_points": "int",
            "augmentation_sparse_warp_time_warping_para": "int",
            "augmentation_sparse_warp_interpolation_order": "int",
            "augmentation_sparse_warp_regularization_weight": "float",
            "augmentation_sparse_warp_num_boundary_points": "int",
        }
    table = _expand(_V093)
    if version == "0.9.3":
        return table
    # 0.8.2: no layer norm, and bytes output mode was still called --utf8.
    del table["layer_norm"], table["bytes_output_mode"]
    table["utf8"] = "bool"
    if version == "0.8.2":
        return table
    if version == "0.7.4":
        for name in ("reverse_train", "reverse_dev", "reverse_test"):
            del table[name]
        return table
    raise SystemExit(f"stand-in: no flag list for DeepSpeech {version}")


def aliases(version: str) -> dict[str, str]:
    if version.startswith("0.6."):
        return {"lm": "lm_binary_path", "trie": "lm_trie_path"}
    return {"scorer": "scorer_path"}


def flag_types(version: str) -> dict[str, str]:
    return _flags(version)


def defaults(version: str) -> dict[str, object]:
    legacy = version.startswith("0.6.")
    values: dict[str, object] = {}
    for name, kind in _flags(version).items():
        values[name] = {"bool": False, "int": 0, "float": 0.0, "str": "", "multi": []}[kind]
    values.update(
        epochs=75,
        learning_rate=0.001,
        n_hidden=2048,
        train_batch_size=1,
        dev_batch_size=1,
        test_batch_size=1,
        export_batch_size=1,
        dropout_rate=0.05,
        checkpoint_secs=600,
        max_to_keep=5,
        feature_win_len=32,
        feature_win_step=20,
        audio_sample_rate=16000,
        log_level=1,
        show_progressbar=True,
        report_count=10 if legacy else 5,
        alphabet_config_path="data/alphabet.txt",
        early_stop=legacy,
        n_steps=16,
    )
    if legacy:
        values.update(load="auto", es_steps=4, es_mean_th=0.5, es_std_th=0.5)
        values.update(lm_binary_path="data/lm/lm.binary", lm_trie_path="data/lm/trie")
    else:
        values.update(load_train="auto", load_evaluate="auto", es_epochs=25, es_min_delta=0.05)
        values.update(plateau_epochs=10, plateau_reduction=0.1, export_file_name="output_graph")
        values.update(export_author_id="author", export_model_name="model", export_model_version="0.0.1")
        values.update(scorer_path="data/lm/kenlm.scorer" if version == "0.7.4" else "")
    return values


class FlagsError(Exception):
    """absl would print `FATAL Flags parsing error: <message>` and exit 1."""


_TRUE = {"true", "t", "1"}
_FALSE = {"false", "f", "0"}


def parse(version: str, args: list[str], *, check_files: bool = True) -> tuple[dict[str, object], list[str]]:
    """absl-like parse: returns (values, positional leftovers). Raises FlagsError.

    check_files=False skips the file validators, to check planned command lines before their files exist.
    """
    types = _flags(version)
    alias = aliases(version)
    values = defaults(version)
    seen_multi: set[str] = set()
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)  # absl leaves non-flags to the program; DeepSpeech ignores them
            continue
        body = arg[2:] if arg.startswith("--") else arg[1:]
        name, has_value, value = body.partition("=")
        name = alias.get(name, name)
        kind = types.get(name)
        if kind is None and name.startswith("no") and types.get(alias.get(name[2:], name[2:])) == "bool":
            if has_value:
                raise FlagsError(f"Boolean flag {name} does not take a value")  # absl wording differs
            values[alias.get(name[2:], name[2:])] = False
            continue
        if kind is None:
            raise FlagsError(f"Unknown command line flag '{name}'")
        if kind == "bool":
            if not has_value or value.lower() in _TRUE:
                values[name] = True
            elif value.lower() in _FALSE:
                values[name] = False
            else:
                raise FlagsError(
                    f"flag --{name}={value}: Non-boolean argument to boolean flag {name}: {value}"
                )
            continue
        if not has_value:
            if i >= len(args):
                raise FlagsError(f"Flag --{name} must have a value other than None.")
            value = args[i]
            i += 1
        try:
            if kind == "int":
                values[name] = int(value)
            elif kind == "float":
                values[name] = float(value)
            elif kind == "multi":
                if name not in seen_multi:
                    values[name] = []
                    seen_multi.add(name)
                values[name].append(value)  # type: ignore[union-attr]
            else:
                values[name] = value
        except ValueError as exc:
            raise FlagsError(f"flag --{name}={value}: {exc}") from None
    if not check_files:
        return values, rest
    # Validators run at parse time.
    if not os.path.isfile(str(values["alphabet_config_path"])):
        raise FlagsError(
            "flag --alphabet_config_path={}: The file pointed to by --alphabet_config_path must exist and be"
            " readable.".format(values["alphabet_config_path"])
        )
    shot = values.get("one_shot_infer")
    if shot and not os.path.isfile(str(shot)):
        raise FlagsError(f"flag --one_shot_infer={shot}: The file pointed to by --one_shot_infer must exist")
    return values, rest
