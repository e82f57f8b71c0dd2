"""Static checks of the two images: no Docker engine runs on CI machines, so the Dockerfiles are read."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.unit.packaging.dockerfile import exec_form, parse

REPO = Path(__file__).resolve().parents[3]
IMAGES = {
    "Dockerfile.operator": ("operator", "deepspeech-operator"),
    "Dockerfile.trainer": ("trainer", "deepspeech-trainer"),
}
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|PRIVATE)", re.I)


def pins(requirements: Path) -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in requirements.read_text().splitlines()]
    return {Requirement(line).name.lower(): Requirement(line) for line in lines if line}


@pytest.fixture(params=sorted(IMAGES))
def dockerfile(request):
    return request.param, parse(REPO / request.param)


def test_every_base_is_pinned_by_tag_or_digest(dockerfile):
    name, parsed = dockerfile
    for stage in parsed.stages:
        reference = stage.base
        assert "@sha256:" in reference or re.search(r":[\w.-]+$", reference.split("/")[-1]), (name, reference)
        assert not reference.endswith(":latest"), (name, reference)


def test_no_registry_host_is_hard_coded(dockerfile):
    # Registries are deployment choices: bases name a repository and tag, a registry comes in by build arg.
    name, parsed = dockerfile
    for stage in parsed.stages:
        first = stage.base.split("/")[0]
        assert len(stage.base.split("/")) == 1 or ("." not in first and ":" not in first), (name, stage.base)


def test_final_stage_runs_as_numeric_non_root_user(dockerfile):
    name, parsed = dockerfile
    users = parsed.final.all("USER")
    assert users, f"{name}: no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, (name, users[-1])


def test_no_add_of_urls_and_no_secrets(dockerfile):
    name, parsed = dockerfile
    for stage in parsed.stages:
        for add in stage.all("ADD"):
            assert "://" not in add, (name, add)
        for env in stage.all("ENV") + stage.all("ARG"):
            names = re.findall(r"(\w+)=", env) or [env.split()[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], (name, env)


def test_entrypoint_is_the_distribution_console_script(dockerfile):
    name, parsed = dockerfile
    distribution, script = IMAGES[name]
    project = tomllib.loads((REPO / distribution / "pyproject.toml").read_text())["project"]
    assert script in project["scripts"]
    assert exec_form(parsed.final.all("ENTRYPOINT")[-1]) == [script]


def test_python_dependencies_come_from_the_pinned_requirements(dockerfile):
    name, parsed = dockerfile
    distribution, _ = IMAGES[name]
    runs = " ".join(parsed.final.all("RUN") + [r for s in parsed.stages for r in s.all("RUN")])
    assert f"{distribution}/requirements.txt" in " ".join(r for s in parsed.stages for r in s.all("COPY"))
    assert "-r" in runs and "requirements.txt" in runs
    # The distribution itself is installed without letting pip resolve anything past the pins.
    assert re.search(r"--no-deps\s+\S*" + distribution, runs), name


@pytest.mark.parametrize("distribution", ["operator", "trainer"])
def test_requirement_pins_satisfy_the_pyproject_ranges(distribution):
    project = tomllib.loads((REPO / distribution / "pyproject.toml").read_text())["project"]
    pinned = pins(REPO / distribution / "requirements.txt")
    for dependency in map(Requirement, project["dependencies"]):
        pin = pinned.get(dependency.name.lower())
        assert pin is not None, f"{distribution}: {dependency.name} is not pinned in requirements.txt"
        (version,) = [s.version for s in pin.specifier]
        assert dependency.specifier.contains(version), f"{distribution}: {pin} outside {dependency}"


def test_trainer_installs_the_engine_with_the_shared_recipe():
    parsed = parse(REPO / "Dockerfile.trainer")
    runs = " ".join(parsed.final.all("RUN"))
    assert parsed.global_args["DEEPSPEECH_VERSION"] == "0.9.3"
    assert parsed.global_args["ENGINE"] == "deepspeech"
    assert '--branch "v${ENGINE_VERSION}"' in runs
    # The one recipe `make engines` runs too (tests/engines): decoder and inference package come from it.
    assert 'python3 /opt/engines/install_engine.py --engine "${ENGINE}" --version "${ENGINE_VERSION}"' in runs
    assert "ds_ctcdecoder" not in runs and "deepspeech==" not in runs
    env = " ".join(parsed.final.all("ENV"))
    for variable in ("DST_TF_PYTHON=", "DST_DEEPSPEECH_DIR=/DeepSpeech", "DST_WORK_DIR=/work"):
        assert variable in env
