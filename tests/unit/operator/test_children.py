"""children.build_job / trainer_rbac: every branch of the Job and RBAC builders."""

from __future__ import annotations

import json

import pytest
from deepspeech_operator import api, contract
from deepspeech_operator.children import Owner, build_job, pod_failure_policy, trainer_rbac, trainer_spec
from deepspeech_operator.config import OperatorConfig
from deepspeech_trainer.spec import default_spec

from .factories import CONFIG, UID, defaulted_spec

OWNER = Owner(name="en", namespace="speech", uid=UID)


def build(spec=None, stage=api.STAGE_TRAIN, resumes=0, config=CONFIG):
    return build_job(
        OWNER,
        spec or defaulted_spec(),
        run_id="g4",
        stage=stage,
        resumes=resumes,
        spec_hash="abc",
        config=config,
    )


def container(job):
    return job["spec"]["template"]["spec"]["containers"][0]


def test_train_job_shape():
    job = build()
    meta, spec, pod = job["metadata"], job["spec"], job["spec"]["template"]["spec"]
    assert meta["name"] == "en-g4-train" and meta["namespace"] == "speech"
    assert meta["labels"] == {
        api.LABEL_NAME: api.APP_NAME,
        api.LABEL_MANAGED_BY: api.OPERATOR_NAME,
        api.LABEL_TRAINING: "en",
        api.LABEL_COMPONENT: "train",
        api.LABEL_RUN: "g4",
        api.LABEL_STAGE: "train",
    }
    assert meta["annotations"] == {api.ANNOTATION_SPEC_HASH: "abc", api.ANNOTATION_TRAINING: "en"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "name": "en",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert spec["backoffLimit"] == 3 and spec["podReplacementPolicy"] == "Failed"
    assert "activeDeadlineSeconds" not in spec and "suspend" not in spec
    assert spec["podFailurePolicy"] == pod_failure_policy()
    rules = pod_failure_policy()["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [contract.EXIT_INVALID]
    assert rules[1]["onExitCodes"]["containerName"] == "trainer"
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "en-trainer"
    assert pod["terminationGracePeriodSeconds"] == CONFIG.train_grace_seconds
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["enableServiceLinks"] is False
    c = container(job)
    assert c["name"] == "trainer" and c["image"] == "deepspeech-operator/trainer:0.9.3"
    assert c["command"] == ["deepspeech-trainer"] and c["args"] == ["train", "--spec", contract.SPEC_FILE]
    assert (
        c["resources"]["limits"]
        == c["resources"]["requests"]
        == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    )
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    field = volumes["spec"]["downwardAPI"]["items"][0]
    assert field["path"] == "spec.json"
    assert field["fieldRef"]["fieldPath"] == f"metadata.annotations['{contract.SPEC_ANNOTATION}']"
    template_meta = job["spec"]["template"]["metadata"]
    assert template_meta["labels"][api.LABEL_RUN] == "g4"
    spec_json = json.loads(template_meta["annotations"][contract.SPEC_ANNOTATION])
    assert "suspend" not in spec_json
    # training.cudnn depends on resources.gpus: the trainer derives it, the operator hands it on as given.
    assert "cudnn" not in spec_json["training"] and default_spec(spec_json)["training"]["cudnn"] is True
    env = {e["name"]: e for e in c["env"]}
    assert env["DST_NAME"]["value"] == "en" and env["DST_NAMESPACE"]["value"] == "speech"
    assert env["DST_RUN_ID"]["value"] == "g4" and env["DST_WORK_DIR"]["value"] == contract.WORK_DIR
    assert env["AWS_REGION"]["value"] == "us-east-1"
    assert "AWS_ENDPOINT_URL" not in env and "AWS_ACCESS_KEY_ID" not in env  # workload identity


def test_preflight_job_is_cpu_only_and_ignores_gpu_placement():
    spec = defaulted_spec(
        resources={
            "gpus": 2,
            "nodeSelector": {"nvidia.com/gpu.product": "A100"},
            "priorityClassName": "high",
            "affinity": {"nodeAffinity": {}},
            "tolerations": [{"key": "x", "operator": "Exists"}],
        },
        queueName="team-a",
    )
    job = build(spec, stage=api.STAGE_PREFLIGHT)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == "en-g4-preflight"
    assert api.LABEL_KUEUE_QUEUE not in job["metadata"]["labels"]
    assert "suspend" not in job["spec"]  # the preflight is not queued
    for key in ("tolerations", "nodeSelector", "affinity", "priorityClassName"):
        assert key not in pod
    assert "nvidia.com/gpu" not in container(job)["resources"]["limits"]
    assert container(job)["args"][0] == "preflight"
    assert pod["terminationGracePeriodSeconds"] == CONFIG.preflight_grace_seconds


def test_train_job_scheduling_and_resources_from_spec():
    spec = defaulted_spec(
        resources={
            "gpus": 4,
            "cpu": 8,
            "memory": "64Gi",
            "sharedMemory": "8Gi",
            "nodeSelector": {"nvidia.com/gpu.product": "A100"},
            "priorityClassName": "high",
            "affinity": {"nodeAffinity": {"x": 1}},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
        },
        queueName="team-a",
        runPolicy={"backoffLimit": 0, "activeDeadlineSeconds": 3600},
        storage={"endpoint": "http://minio:9000", "region": "eu-1", "secretRef": {"name": "s3"}},
        serviceAccountName="irsa",
    )
    job = build(spec, resumes=2)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == "en-g4-train-s2"
    assert job["metadata"]["labels"][api.LABEL_KUEUE_QUEUE] == "team-a"
    assert job["spec"]["suspend"] is True  # queued Jobs wait for Kueue's admission from the start
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 3600
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu" and pod["tolerations"][1]["key"] == "spot"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
    assert pod["priorityClassName"] == "high" and pod["affinity"] == {"nodeAffinity": {"x": 1}}
    assert pod["serviceAccountName"] == "irsa"
    limits = container(job)["resources"]["limits"]
    assert limits == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "4"}
    assert {v["name"]: v for v in pod["volumes"]}["dshm"]["emptyDir"]["sizeLimit"] == "8Gi"
    env = {e["name"]: e for e in container(job)["env"]}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000" and env["AWS_REGION"]["value"] == "eu-1"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert all(
        "value" not in env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    )


def test_cpu_training_has_no_gpu_and_no_gpu_toleration():
    job = build(defaulted_spec(resources={"gpus": 0}))
    assert "nvidia.com/gpu" not in container(job)["resources"]["limits"]
    assert "tolerations" not in job["spec"]["template"]["spec"]
    spec_json = json.loads(job["spec"]["template"]["metadata"]["annotations"][contract.SPEC_ANNOTATION])
    assert default_spec(spec_json)["training"]["cudnn"] is False


def test_explicit_cudnn_is_kept_and_config_changes_image_and_user():
    config = OperatorConfig(
        images={"0.9.3": "deepspeech-operator/trainer:custom"}, run_as_user=4242, image_pull_policy="Always"
    )
    job = build(defaulted_spec(training={"cudnn": False}), config=config)
    spec_json = json.loads(job["spec"]["template"]["metadata"]["annotations"][contract.SPEC_ANNOTATION])
    assert spec_json["training"]["cudnn"] is False
    assert container(job)["image"] == "deepspeech-operator/trainer:custom"
    assert container(job)["imagePullPolicy"] == "Always"
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 4242


def test_trainer_spec_does_not_mutate_input():
    spec = defaulted_spec(deepspeech={})
    trainer_spec(spec)
    assert spec["deepspeech"] == {}


def test_rbac_objects():
    objs = trainer_rbac(OWNER, defaulted_spec())
    sa, role, binding = objs
    assert sa["kind"] == "ServiceAccount" and sa["metadata"]["name"] == "en-trainer"
    assert role["rules"] == [
        {
            "apiGroups": [api.GROUP],
            "resources": [f"{api.PLURAL}/status"],
            "resourceNames": ["en"],
            "verbs": ["get", "patch"],
        }
    ]
    assert binding["roleRef"]["name"] == "en-trainer"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "en-trainer", "namespace": "speech"}]
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == UID for o in objs)
    assert all(o["metadata"]["namespace"] == "speech" for o in objs)


def test_rbac_with_workload_identity_binds_the_given_account():
    objs = trainer_rbac(OWNER, defaulted_spec(serviceAccountName="irsa"))
    assert [o["kind"] for o in objs] == ["Role", "RoleBinding"]
    assert objs[1]["subjects"][0]["name"] == "irsa"


@pytest.mark.parametrize("stage", [api.STAGE_PREFLIGHT, api.STAGE_TRAIN])
def test_work_dir_has_a_size_limit_the_trainer_is_told(stage):
    def work(job):
        pod = job["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in container(job)["env"]}
        return {v["name"]: v for v in pod["volumes"]}["work"]["emptyDir"], env["DST_WORK_DIR_SIZE"]

    assert work(build(defaulted_spec(), stage=stage)) == ({"sizeLimit": "50Gi"}, "50Gi")
    # Both stages get the spec's size: preflight checks tarballs against the limits train will use.
    spec = defaulted_spec(resources={"gpus": 1, "workDirSize": "200Gi"})
    assert work(build(spec, stage=stage)) == ({"sizeLimit": "200Gi"}, "200Gi")
