"""Print the real training program's flags as JSON {name: type}, in the engine's own interpreter.

DeepSpeech (absl): the FLAGS registry after create_flags(); 0.6.x imports util.flags from its checkout (the
working directory). Coqui STT (argparse via its config dataclass): the fields of BaseSttConfig. Used by a test
that compares the trainer's flag tables with the real programs. CPython 3.6 to 3.8.

usage: flag_registry.py deepspeech-legacy|deepspeech|coqui-stt [SOURCE]
  SOURCE: a DeepSpeech checkout whose flags to read (default: the installed package / the working directory),
  so one engine's interpreter reads the flags of neighbouring releases too.
"""

import json
import sys

ABSL_TYPES = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "string": "string",
    "multi string": "multistring",
}


def absl_flags(module):
    module.create_flags()
    out = {}
    for name, flag in module.FLAGS._flags().items():
        if "alias for" in (flag.help or "").lower():  # absl's DEFINE_alias: reported with its target
            continue
        kind = ABSL_TYPES.get(flag.flag_type())
        if kind is not None and name not in (
            "helpfull",
            "helpshort",
            "helpxml",
            "help",
            "flagfile",
            "undefok",
        ):
            out[name] = kind
    return out


def coqui_flags():
    import dataclasses

    from coqui_stt_training.util.config import BaseSttConfig

    kinds = {bool: "bool", int: "int", float: "float", str: "string"}
    return {f.name: kinds.get(f.type, "list") for f in dataclasses.fields(BaseSttConfig)}


def main(dialect, source=None):
    if dialect == "coqui-stt":
        flags = coqui_flags()
    elif dialect == "deepspeech-legacy":
        sys.path.insert(0, source or ".")
        from util import flags as module

        flags = absl_flags(module)
    else:
        if source:
            sys.path.insert(0, source + "/training")
        from deepspeech_training.util import flags as module

        flags = absl_flags(module)
    print(json.dumps(flags, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:3])
