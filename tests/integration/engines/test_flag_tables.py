"""The trainer's flag tables against the real programs' own flag registries (absl for DeepSpeech, the config
dataclass behind Coqui STT's argparse), read by trainer/.../engine_scripts/flag_registry.py in each engine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from deepspeech_trainer import flags

from tests import engines
from tests.cluster.config import REPO

pytestmark = pytest.mark.real_training
SCRIPT = REPO / "trainer" / "deepspeech_trainer" / "engine_scripts" / "flag_registry.py"
TYPES = {
    flags.FlagType.BOOL: "bool",
    flags.FlagType.INT: "int",
    flags.FlagType.FLOAT: "float",
    flags.FlagType.STRING: "string",
    flags.FlagType.MULTISTRING: "multistring",
    flags.FlagType.LIST: "list",
}


def real_flags(python: Path, dialect: str, source: Path | None) -> dict[str, str]:
    command = [str(python), str(SCRIPT), dialect, *([str(source)] if source else [])]
    out = subprocess.run(command, cwd=source or REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_coqui_flag_table_is_the_real_programs():
    engine = engines.require("coqui-stt-1.4.0")
    ours = {n: TYPES[f.type] for n, f in flags.flags_for(engine.version).items()}
    assert ours == real_flags(engine.python, "coqui-stt", None)


@pytest.mark.parametrize("version", flags.VERSIONS)
def test_deepspeech_flag_table_is_the_real_programs(version):
    # The flags module needs only absl: one engine's interpreter reads every release of its dialect.
    legacy = flags.is_legacy(version)
    engine = engines.require("deepspeech-0.6.0" if legacy else "deepspeech-0.9.3")
    source = engines.deepspeech_source(version)
    if source is None:
        pytest.skip(engines.skip_reason(f"deepspeech-{version}"))
    ours = {n: TYPES[f.type] for n, f in flags.flags_for(version).items()}
    real = real_flags(engine.python, "deepspeech-legacy" if legacy else "deepspeech", source)
    assert ours == real, {
        "missing from our table": sorted(set(real) - set(ours)),
        "not in the real program": sorted(set(ours) - set(real)),
        "type differs": sorted(n for n in set(ours) & set(real) if ours[n] != real[n]),
    }
