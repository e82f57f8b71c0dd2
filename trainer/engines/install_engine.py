"""Install a training engine into the Python that runs this script: the one recipe for images and tests.

Dockerfile.trainer runs it in the image's TF1 interpreter; `make engines` (tests/engines) runs it in a
Python 3.7 virtualenv per engine release. Both therefore install the same way:

- DeepSpeech 0.7+: the checkout's own declared dependencies (`pip install -e <checkout>` with
  DS_NOTENSORFLOW set, so the checkout's TensorFlow pin never replaces the one chosen here), which include
  the CTC decoder of the release; then the `deepspeech` inference package for the smoke test.
- DeepSpeech 0.6.x: the checkout's requirements.txt without its TensorFlow line, plus ds_ctcdecoder 0.6.1
  (0.6.0 was never published; the decoder source is identical between the two tags).
- Coqui STT: `coqui-stt-training` from PyPI without dependencies, then its declared requirements without
  TensorFlow; then the `stt` inference package.

TensorFlow itself: `--tensorflow install` installs the version pinned in the constraints file;
`--tensorflow base` keeps the one the base image brings (NVIDIA's GPU build).

Runs on CPython 3.6 to 3.8 with the standard library and setuptools only (no importlib.metadata on 3.6).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from typing import Dict, Iterator, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINES = ("deepspeech", "coqui-stt")
# The CTC decoder a DeepSpeech release needs, where it differs from the release itself.
DECODER_OF = {"0.6.0": "0.6.1"}
# pip 24 refuses the legacy version strings of some of these old packages' metadata. Upgraded, not just
# required: CPython 3.6's bundled pip 18.1 satisfies "<24" but cannot see manylinux2010/2014 wheels, so it
# would compile grpcio and friends from source (pip takes the newest release for the running Python).
PIP = "pip<24"


def pip(*args: str, env: Optional[Dict[str, str]] = None) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *args]
    print("+ " + " ".join(command), flush=True)
    subprocess.check_call(command, env=env)


def is_tensorflow(requirement: str) -> bool:
    name = requirement.strip().split(";")[0]
    for sep in "<>=!~[ ":
        name = name.split(sep)[0]
    return name.lower().replace("_", "-") in ("tensorflow", "tensorflow-gpu")


def requirement_lines(path: str) -> Iterator[str]:
    with open(path) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                yield line


def declared_requirements(distribution: str) -> List[str]:
    """What an installed distribution declares, read with setuptools (works on Python 3.6)."""
    import pkg_resources

    return [str(r) for r in pkg_resources.get_distribution(distribution).requires()]


def install_requirements(requirements: List[str], constraints: str) -> None:
    kept = [r for r in requirements if not is_tensorflow(r)]
    if not kept:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(kept) + "\n")
    try:
        pip("-c", constraints, "-r", fh.name)
    finally:
        os.unlink(fh.name)


def checkout_version(source: str) -> str:
    for candidate in (
        os.path.join(source, "training", "deepspeech_training", "VERSION"),
        os.path.join(source, "VERSION"),
    ):
        if os.path.isfile(candidate):
            with open(candidate) as fh:
                return fh.read().strip()
    raise SystemExit(f"install_engine: {source} holds no DeepSpeech VERSION file; is it a checkout?")


def install_deepspeech(version: str, source: Optional[str], constraints: str) -> None:
    if source is None:
        raise SystemExit(f"install_engine: --source <DeepSpeech checkout of v{version}> is required")
    found = checkout_version(source)
    if found != version:
        raise SystemExit(f"install_engine: {source} is DeepSpeech {found}, not {version}")
    if os.path.isdir(os.path.join(source, "training", "deepspeech_training")):
        env = dict(os.environ, DS_NOTENSORFLOW="1")
        pip("-c", constraints, "-e", source, env=env)
    else:
        requirements = list(requirement_lines(os.path.join(source, "requirements.txt")))
        requirements.append(f"ds_ctcdecoder=={DECODER_OF.get(version, version)}")
        install_requirements(requirements, constraints)
    pip("-c", constraints, f"deepspeech=={version}")


def install_coqui(version: str, constraints: str) -> None:
    pip("-c", constraints, "--no-deps", f"coqui-stt-training=={version}")
    install_requirements(declared_requirements("coqui-stt-training"), constraints)
    pip("-c", constraints, f"stt=={version}")


def default_constraints(engine: str, version: str) -> str:
    """constraints/<engine>-<version>-py<X.Y>.txt for the running Python where there is one, else the plain file.

    A release's freeze is only valid for the Python it was made on: old releases' newest versions differ per
    Python (grpcio, h5py and protobuf dropped 3.6 before 3.7), so each base's interpreter needs its own set.
    """
    stem = os.path.join(HERE, "constraints", f"{engine}-{version}")
    specific = f"{stem}-py{sys.version_info[0]}.{sys.version_info[1]}.txt"
    return specific if os.path.isfile(specific) else f"{stem}.txt"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--source", help="DeepSpeech checkout of the release tag (deepspeech only)")
    parser.add_argument("--tensorflow", choices=("install", "base"), default="install")
    parser.add_argument(
        "--constraints",
        help="pip constraints (default: constraints/<engine>-<version>[-py<X.Y>].txt for this Python)",
    )
    args = parser.parse_args(argv)

    constraints = args.constraints or default_constraints(args.engine, args.version)
    if not os.path.isfile(constraints):
        raise SystemExit(
            f"install_engine: no constraints file {constraints} for {args.engine} {args.version}"
        )
    print(f"install_engine: constraints {constraints}", flush=True)
    pip("--upgrade", PIP)
    if args.tensorflow == "install":
        tensorflow = [line for line in requirement_lines(constraints) if is_tensorflow(line)]
        if not tensorflow:
            raise SystemExit(f"install_engine: {constraints} pins no tensorflow")
        pip("-c", constraints, *tensorflow)
    if args.engine == "deepspeech":
        install_deepspeech(args.version, args.source and os.path.abspath(args.source), constraints)
    else:
        install_coqui(args.version, constraints)
    print(f"install_engine: {args.engine} {args.version} installed into {sys.prefix}", flush=True)


if __name__ == "__main__":
    main()
