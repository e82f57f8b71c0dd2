from __future__ import annotations

import pytest
from deepspeech_operator import config
from deepspeech_operator.config import ConfigError, parse


def test_defaults(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith(config.ENV_PREFIX):
            monkeypatch.delenv(key)
    c = parse([])
    assert c.namespaces == () and c.metrics_port == 8080 and c.liveness_port == 8081
    assert (c.api_timeout_seconds, c.watch_timeout_seconds, c.liveness_stall_seconds) == (20, 30, 0)
    assert c.own_service_account == ""
    assert parse(["--own-service-account", "ops/deepspeech-operator"]).own_service_account == (
        "ops/deepspeech-operator"
    )
    assert c.image_for("0.6.1") == "deepspeech-operator/trainer:0.6.1"
    assert c.allowed_image_prefixes == ("deepspeech-operator/trainer:",)
    assert c.image_allowed("deepspeech-operator/trainer:x") and not c.image_allowed("other/trainer:x")
    assert c.train_defaults.work_dir_size == "50Gi"


def test_flags_and_env(monkeypatch):
    monkeypatch.setenv("DST_OPERATOR_NAMESPACES", "a, b")
    monkeypatch.setenv("DST_OPERATOR_TRAIN_MEMORY", "32Gi")
    monkeypatch.setenv("DST_OPERATOR_TRAIN_WORK_DIR_SIZE", "200Gi")
    c = parse(
        [
            "--image-repository",
            "corp/ds",
            "--images",
            "0.9.3=corp/ds:93",
            "--metrics-port",
            "9100",
            "--allowed-image-prefixes",
            "corp/",
            "--history-limit",
            "5",
            "--image-pull-policy",
            "Always",
        ]
    )
    assert c.namespaces == ("a", "b") and c.train_defaults.memory == "32Gi"
    assert c.train_defaults.work_dir_size == "200Gi"
    assert c.image_for("0.9.3") == "corp/ds:93" and c.image_for("0.8.2") == "corp/ds:0.8.2"
    assert c.metrics_port == 9100 and c.history_limit == 5 and c.image_pull_policy == "Always"


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--metrics-port", "x"], "--metrics-port"),
        (["--metrics-port", "0"], "--metrics-port"),
        (["--train-cpu", "lots"], "--train-cpu"),
        (["--train-work-dir-size", "500m"], "--train-work-dir-size"),
        (["--images", "0.9.3"], "--images"),
        (["--images", "1.0.0=a/b:1"], "--images"),
        (["--images", "0.9.3=evil/x:1"], "--images"),
        (["--image-pull-policy", "Sometimes"], "--image-pull-policy"),
        (["--history-limit", "50"], "--history-limit"),
        (["--api-timeout-seconds", "0"], "--api-timeout-seconds"),
        (["--watch-timeout-seconds", "2"], "--watch-timeout-seconds"),
        (["--liveness-stall-seconds", "-1"], "--liveness-stall-seconds"),
        (["--own-service-account", "just-a-name"], "--own-service-account"),
        (["--own-service-account", "Ops/x"], "--own-service-account"),
    ],
)
def test_bad_values_name_the_flag(argv, names):
    with pytest.raises(ConfigError, match=names):
        parse(argv)


def test_main_reports_config_errors(capsys):
    from deepspeech_operator.__main__ import main

    assert main(["--metrics-port", "nope"]) == 2
    assert "--metrics-port" in capsys.readouterr().err
