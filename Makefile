# deepspeech-operator: every target installs what it needs (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages the tests need: openssl (cluster PKI), util-linux (unshare for pods that run as
# processes), espeak-ng and sox (real speech for test datasets).
SYSTEM_PACKAGES := openssl util-linux espeak-ng sox
REQS := operator/requirements.txt trainer/requirements.txt trainer/requirements-prepare.txt requirements-dev.txt operator/pyproject.toml trainer/pyproject.toml
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help dev system-deps engines images images-clean lint typecheck fmt unit test integration cluster-up cluster-down cluster-build run-operator generate demo demo-down bench

help:
	@echo "make demo        - local cluster + S3 + operator, dry-run training of a generated dataset"
	@echo "make test        - lint, unit and integration tests (builds the local control plane once)"
	@echo "make dev         - create .venv with both distributions (editable) and the test tools"
	@echo "make engines     - build the real training engines (Python 3.7 + TF1 venvs, cached; see tests/engines)"
	@echo "make images      - build both images with buildah (no Docker daemon; stand-in bases where needed; docs/images.md)"
	@echo "make cluster-up  - start the local control plane and S3 (.cluster/kubeconfig, .cluster/s3.env)"
	@echo "make cluster-down- stop it and remove its state"
	@echo "make run-operator- run the operator in the foreground against .cluster/kubeconfig or KUBECONFIG"
	@echo "make bench       - benchmarks against aws-cli (bench/README.md); about 20 minutes"

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r operator/requirements.txt -r trainer/requirements.txt -r trainer/requirements-prepare.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e operator -e 'trainer[prepare]'
	@touch $@

dev: $(STAMP)

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Real training engines: Coqui STT always, DeepSpeech where its source is available (DSO_DEEPSPEECH_SRC).
engines: $(STAMP)
	$(PY) -m tests.engines build

# Not part of `make test`: image builds take minutes. Tests that need the images skip until this has run.
images: $(STAMP)
	$(PY) -m tests.images build

images-clean: $(STAMP)
	$(PY) -m tests.images clean

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

typecheck: $(STAMP)
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

cluster-build: $(STAMP)
	$(PY) -m tests.cluster build

cluster-up: $(STAMP)
	$(PY) -m tests.cluster up

cluster-down: $(STAMP)
	$(PY) -m tests.cluster down

integration: $(STAMP) system-deps engines
	$(PY) -m tests.cluster build
	$(PY) -m pytest tests/integration -q

test: lint system-deps engines
	$(PY) -m tests.cluster build
	$(PY) -m pytest tests -q

generate: $(STAMP)
	$(PY) -m deepspeech_operator.crdgen

run-operator: $(STAMP)
	KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.cluster/kubeconfig} $(PY) -m deepspeech_operator

bench: $(STAMP) system-deps engines
	$(PY) -m bench

demo: $(STAMP) system-deps engines
	$(PY) -m tests.e2e.demo up

demo-down: $(STAMP)
	$(PY) -m tests.e2e.demo down
