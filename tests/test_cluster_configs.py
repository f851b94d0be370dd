"""The cloud deployment files in cluster/, checked offline.

Nothing here can start a cluster, so the tests check what is checkable without one: every file
parses; the launcher configs pass the installed Ray's own schema validation; the KubeRay manifests
use only field names of the ray.io/v1 API; the head never offers a GPU and a GPU worker group
autoscales from zero; every script a command names exists in the repository and accepts the
flags it is given; the package gets installed; and every pinned Ray version agrees with the Ray
installed here (the version jobs are submitted with).
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
LAUNCHER_CONFIGS = [CLUSTER / "aws.yaml", CLUSTER / "gcp.yaml"]
KUBERAY_CLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
KUBERAY_JOB = CLUSTER / "kuberay" / "rayjob.yaml"
DOCKERFILE = CLUSTER / "Dockerfile"
README = CLUSTER / "README.md"
ALL_YAML = sorted(CLUSTER.rglob("*.yaml"))
# Every text file a user copies commands from.
ALL_TEXT = [*ALL_YAML, DOCKERFILE, README]

ENTRY_POINTS = ("jobs/full_pipeline.py",)  # jobs/tune_sweep.py runs alone what the pipeline runs with --tune
# Where the configs put the repository on a node (launcher file_mounts, Docker image).
REMOTE_REPO_PREFIXES = ("~/hyperrep_ray/", "/home/ray/hyperrep_ray/")
DATA_ROOT = "/home/ray/hyperrep_data"

# Field names of the KubeRay ray.io/v1 API (RayCluster and RayJob types); a typo in a field name
# is silently dropped or rejected by the API server, so it is caught here instead.
RAYCLUSTER_SPEC_FIELDS = {
    "headGroupSpec",
    "workerGroupSpecs",
    "rayVersion",
    "enableInTreeAutoscaling",
    "autoscalerOptions",
    "headServiceAnnotations",
    "suspend",
    "managedBy",
    "gcsFaultToleranceOptions",
    "authOptions",
}
HEAD_GROUP_FIELDS = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_GROUP_FIELDS = {
    "groupName",
    "replicas",
    "minReplicas",
    "maxReplicas",
    "numOfHosts",
    "rayStartParams",
    "template",
    "scaleStrategy",
    "suspend",
    "idleTimeoutSeconds",
}
AUTOSCALER_OPTION_FIELDS = {
    "resources",
    "image",
    "imagePullPolicy",
    "env",
    "envFrom",
    "volumeMounts",
    "securityContext",
    "idleTimeoutSeconds",
    "upscalingMode",
    "version",
}
RAYJOB_SPEC_FIELDS = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "rayClusterSpec",
    "submitterPodTemplate",
    "metadata",
    "clusterSelector",
    "submitterConfig",
    "managedBy",
    "deletionStrategy",
    "entrypoint",
    "runtimeEnvYAML",
    "jobId",
    "submissionMode",
    "entrypointResources",
    "entrypointNumCpus",
    "entrypointNumGpus",
    "ttlSecondsAfterFinished",
    "shutdownAfterJobFinishes",
    "suspend",
    "schedule",
}
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}

# `python <something>.py [args]` up to the end of the command (a shell separator, quote or line end).
PYTHON_SCRIPT = re.compile(r"\bpython3?\s+(?P<script>[\w./~-]+\.py)(?P<args>[^\n;&|\"'`]*)")


def _load(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def _joined(text: str) -> str:
    """Comment-prefixed shell lines with trailing backslashes, joined into single commands."""
    lines = [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]
    return re.sub(r"\\\s*\n\s*", " ", "\n".join(lines))


def _launcher_commands(cfg: dict) -> list[str]:
    keys = (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    commands = [c for k in keys for c in cfg.get(k) or []]
    for node_type in cfg["available_node_types"].values():
        commands += node_type.get("initialization_commands") or []
        commands += node_type.get("worker_setup_commands") or []
    return commands


def _invocations() -> list[tuple[str, list[str]]]:
    """(repository-relative script, its arguments) for every `python SCRIPT ...` in cluster/."""
    texts = [_joined(p.read_text()) for p in ALL_TEXT]
    texts += ["\n".join(_launcher_commands(_load(p))) for p in LAUNCHER_CONFIGS]
    texts.append(_load(KUBERAY_JOB)["spec"]["entrypoint"])
    calls = []
    for text in texts:
        for m in PYTHON_SCRIPT.finditer(text):
            script = m.group("script")
            for prefix in REMOTE_REPO_PREFIXES:
                if script.startswith(prefix):
                    script = script[len(prefix) :]
            calls.append((script, m.group("args").split()))
    return calls


def _named_scripts() -> dict[str, set[str]]:
    """Repository-relative script path -> the --flags it is given, over all cluster files."""
    found: dict[str, set[str]] = {}
    for script, args in _invocations():
        found.setdefault(script, set()).update(a.split("=")[0] for a in args if a.startswith("--"))
    return found


def _ray_major_minor() -> str:
    import ray

    return ".".join(ray.__version__.split(".")[:2])


def _gpus(resources: dict | None) -> float:
    return float((resources or {}).get("nvidia.com/gpu", 0))


def _container(pod_template: dict) -> dict:
    return pod_template["spec"]["containers"][0]


# ----------------------------------------------------------------------------------------------
# Every file parses; each kind has its required parts.


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: p.name)
def test_every_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs), f"{path} is not a YAML mapping"


def test_expected_files_exist():
    for path in [*LAUNCHER_CONFIGS, KUBERAY_CLUSTER, KUBERAY_JOB, DOCKERFILE, README]:
        assert path.is_file(), f"missing {path.relative_to(REPO)}"


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_config_structure(path):
    cfg = _load(path)
    for key in (
        "cluster_name",
        "max_workers",
        "provider",
        "auth",
        "available_node_types",
        "head_node_type",
        "file_mounts",
        "setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ):
        assert key in cfg, f"{path.name}: missing {key}"
    assert cfg["provider"]["type"] in {"aws", "gcp"}
    assert cfg["head_node_type"] in cfg["available_node_types"]
    for name, node_type in cfg["available_node_types"].items():
        assert {"node_config", "resources"} <= set(node_type), f"{path.name}: node type {name} incomplete"
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert any("ray start --address=$RAY_HEAD_IP" in c for c in cfg["worker_start_ray_commands"])


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_config_passes_rays_own_validation(path):
    """The installed Ray fills in provider defaults and validates against its ray-schema.json,
    exactly as `ray up` does before it touches the cloud."""
    # a private API: if a Ray upgrade moves it, this test fails and says where to look
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(_load(path)))
    validate_config(prepared)
    assert prepared["available_node_types"][prepared["head_node_type"]]["max_workers"] == 0


def test_kuberay_raycluster_structure():
    doc = _load(KUBERAY_CLUSTER)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    assert doc["metadata"]["name"]
    _check_raycluster_spec(doc["spec"], "RayCluster")


def test_kuberay_rayjob_structure():
    doc = _load(KUBERAY_JOB)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    assert doc["metadata"]["name"]
    spec = doc["spec"]
    assert set(spec) <= RAYJOB_SPEC_FIELDS, f"unknown RayJob fields: {set(spec) - RAYJOB_SPEC_FIELDS}"
    assert spec.get("submissionMode", "K8sJobMode") in SUBMISSION_MODES
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] >= 0
    assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict), "runtimeEnvYAML must be a YAML mapping"
    # The entrypoint is spliced into KubeRay's shell command: no shell operators of its own.
    assert not re.search(r"&&|;|\|", spec["entrypoint"])
    args = shlex.split(spec["entrypoint"])
    assert args[0] == "python" and args[1].endswith("jobs/full_pipeline.py")
    for flag, value in (
        ("--preset", "paper"),
        ("--out", "s3://YOUR-BUCKET/hyperrep/paper"),
        ("--tracking-uri", "http://mlflow.YOUR-NAMESPACE:5000"),
    ):
        assert args[args.index(flag) + 1] == value
    _check_raycluster_spec(spec["rayClusterSpec"], "RayJob.rayClusterSpec")


def test_rayjob_cluster_matches_raycluster():
    """The RayJob embeds the same cluster as raycluster.yaml; edit both or neither."""
    assert _load(KUBERAY_JOB)["spec"]["rayClusterSpec"] == _load(KUBERAY_CLUSTER)["spec"]


def _check_raycluster_spec(spec: dict, where: str) -> None:
    assert set(spec) <= RAYCLUSTER_SPEC_FIELDS, (
        f"{where}: unknown fields {set(spec) - RAYCLUSTER_SPEC_FIELDS}"
    )
    assert set(spec["headGroupSpec"]) <= HEAD_GROUP_FIELDS
    assert set(spec.get("autoscalerOptions") or {}) <= AUTOSCALER_OPTION_FIELDS
    assert spec["headGroupSpec"]["template"]["spec"]["containers"], f"{where}: head has no container"
    assert spec["workerGroupSpecs"], f"{where}: no worker groups"
    for group in spec["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP_FIELDS, (
            f"{where}: unknown fields {set(group) - WORKER_GROUP_FIELDS}"
        )
        assert group["groupName"] and group["template"]["spec"]["containers"]
    for params in [spec["headGroupSpec"].get("rayStartParams") or {}] + [
        g.get("rayStartParams") or {} for g in spec["workerGroupSpecs"]
    ]:
        assert all(isinstance(v, str) for v in params.values()), (
            f"{where}: rayStartParams values must be strings"
        )


# ----------------------------------------------------------------------------------------------
# CPU head, autoscaling GPU workers.


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_head_has_no_gpu_and_gpu_workers_autoscale_from_zero(path):
    cfg = _load(path)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head must not offer GPUs"
    assert head["resources"].get("CPU") == 0, "the head advertises CPU: 0 so no task or actor lands there"
    assert "guestAccelerators" not in head["node_config"]
    assert not str(head["node_config"].get("InstanceType", "")).startswith(("g", "p")), "GPU instance as head"
    gpu_workers = [
        t for n, t in types.items() if n != cfg["head_node_type"] and t["resources"].get("GPU", 0) >= 1
    ]
    assert gpu_workers, "no GPU worker type"
    for worker in gpu_workers:
        assert worker["min_workers"] == 0 and worker["max_workers"] > 0, "GPU workers must autoscale from 0"
    assert cfg["max_workers"] >= sum(
        t.get("max_workers", 0) for n, t in types.items() if n != cfg["head_node_type"]
    )


@pytest.mark.parametrize("path", [KUBERAY_CLUSTER, KUBERAY_JOB], ids=lambda p: p.name)
def test_kuberay_head_has_no_gpu_and_gpu_group_autoscales_from_zero(path):
    doc = _load(path)
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]
    head_resources = _container(head["template"]).get("resources", {})
    assert _gpus(head_resources.get("limits")) == 0 and _gpus(head_resources.get("requests")) == 0
    assert head["rayStartParams"].get("num-cpus") == "0", "no tasks or actors on the head"
    gpu_groups = [
        g for g in spec["workerGroupSpecs"] if _gpus(_container(g["template"])["resources"]["limits"]) >= 1
    ]
    assert gpu_groups, "no worker group with nvidia.com/gpu limits"
    for group in gpu_groups:
        assert group["minReplicas"] == 0 and group["maxReplicas"] > 0
        assert 0 <= group.get("replicas", 0) <= group["maxReplicas"]


# ----------------------------------------------------------------------------------------------
# Scripts, install, versions.


def test_named_scripts_exist_and_entry_points_are_named():
    named = _named_scripts()
    for entry_point in ENTRY_POINTS:
        assert entry_point in named, f"no command in cluster/ runs {entry_point}"
    for script in named:
        assert (REPO / script).exists(), (
            f"a command in cluster/ names {script}, which is not in the repository"
        )


def test_named_scripts_accept_the_flags_they_are_given():
    """`python SCRIPT --help` must list every --flag the cluster files pass to SCRIPT."""
    for script, flags in sorted(_named_scripts().items()):
        if not flags:
            continue
        out = subprocess.run(
            [sys.executable, str(REPO / script), "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"{script} --help failed:\n{out.stderr[-2000:]}"
        missing = sorted(f for f in flags if f not in out.stdout)
        assert not missing, f"{script} does not accept {missing} (cluster/ passes them)"


def test_one_data_root_everywhere():
    """The pipeline reads its data sets from the directory the nodes / the image prefetched them into."""
    roots: dict[str, set[str]] = {}
    for script, args in _invocations():
        for i, arg in enumerate(args[:-1]):
            if arg == "--data-root" and args[i + 1] != "DIR":  # "DIR": prose
                roots.setdefault(script, set()).add(args[i + 1])
    assert roots.get("jobs/full_pipeline.py") == {DATA_ROOT}, roots
    for path in LAUNCHER_CONFIGS:
        assert any(
            "cluster/prefetch_data.py" in c and f"--data-root {DATA_ROOT}" in c
            for c in _load(path)["setup_commands"]
        ), f"{path.name}: setup does not prefetch the data sets into {DATA_ROOT}"
    assert f"--data-root {DATA_ROOT} --prune" in DOCKERFILE.read_text(), (
        "the image has no data in " + DATA_ROOT
    )


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_copies_and_installs_the_repo(path):
    cfg = _load(path)
    assert cfg["file_mounts"].get("~/hyperrep_ray") == ".", (
        "the repo (run `ray up` from its root) -> ~/hyperrep_ray"
    )
    setup = cfg["setup_commands"]
    assert any(re.search(r"pip install -e ~/hyperrep_ray(\s|$)", c) for c in setup), (
        "no `pip install -e` of the repo"
    )


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_workers_get_cloud_credentials(path):
    """Ray gives its IAM role / service account to the head only; workers write to --out too."""
    cfg = _load(path)
    for name, node_type in cfg["available_node_types"].items():
        if name == cfg["head_node_type"]:
            continue
        nc = node_type["node_config"]
        if cfg["provider"]["type"] == "aws":
            assert nc["IamInstanceProfile"]["Arn"].endswith(":instance-profile/ray-autoscaler-v1")
        else:
            emails = [sa["email"] for sa in nc["serviceAccounts"]]
            assert emails == [f"ray-autoscaler-sa-v1@{cfg['provider']['project_id']}.iam.gserviceaccount.com"]
            assert isinstance(nc.get("scheduling", {}), dict), "GCE `scheduling` is an object, not a list"


def test_dockerfile_copies_and_installs_the_repo():
    text = DOCKERFILE.read_text()
    instructions = _joined(re.sub(r"^\s*#.*$", "", text, flags=re.M))
    copy_dest = re.search(r"^COPY\s+(?:--\S+\s+)*\.\s+(\S+)\s*$", instructions, re.M)
    assert copy_dest, "the Dockerfile must COPY the repository (build context '.')"
    dest = copy_dest.group(1).rstrip("/")
    assert re.search(rf"pip install -e {re.escape(dest)}(\s|$)", instructions), f"no `pip install -e {dest}`"
    assert dest + "/" in REMOTE_REPO_PREFIXES
    assert re.search(r"^FROM\s+\S+", instructions, re.M)
    ignore = CLUSTER / "Dockerfile.dockerignore"
    assert ignore.is_file() and ".git" in ignore.read_text().split()


def test_pinned_ray_versions_match_installed_ray():
    """Images, pip pins and rayVersion all name one Ray release, the installed one's major.minor."""
    versions: dict[str, set[str]] = {}
    patterns = (
        r"rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)",  # official images
        r"hyperrep-ray:(\d+\.\d+\.\d+)",  # the image built from cluster/Dockerfile
        r"\bray\[[\w,]+\]==(\d+\.\d+\.\d+)",  # pip pins
        r"rayVersion:\s*['\"]?(\d+\.\d+\.\d+)",  # KubeRay
        r"ray\.__version__ == '(\d+\.\d+\.\d+)'",  # the Dockerfile's build-time check
    )
    for path in ALL_TEXT:
        text = path.read_text()
        for pattern in patterns:
            for version in re.findall(pattern, text):
                versions.setdefault(version, set()).add(path.name)
    assert versions, "no pinned Ray version found"
    assert len(versions) == 1, f"different Ray versions pinned: {versions}"
    (pinned,) = versions
    assert pinned.rsplit(".", 1)[0] == _ray_major_minor(), (
        f"cluster/ pins Ray {pinned} but Ray {_ray_major_minor()} is installed; update cluster/ "
        "(images, pins, rayVersion) together with the Ray you submit jobs with"
    )
    python_tags = {tag for p in ALL_TEXT for tag in re.findall(r"ray:\d+\.\d+\.\d+-(py3\d+)", p.read_text())}
    assert len(python_tags) == 1, f"images for different Python versions: {python_tags}"


def test_kuberay_images_are_consistent():
    images = set()
    for path in (KUBERAY_CLUSTER, KUBERAY_JOB):
        doc = _load(path)
        spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
        images.add(_container(spec["headGroupSpec"]["template"])["image"])
        images |= {_container(g["template"])["image"] for g in spec["workerGroupSpecs"]}
    assert len(images) == 1, f"head and workers must run one image: {images}"


def test_readme_covers_every_file_and_the_cost_estimate():
    text = README.read_text()
    for name in ("aws.yaml", "gcp.yaml", "raycluster.yaml", "rayjob.yaml", "Dockerfile", "prefetch_data.py"):
        assert name in text, f"cluster/README.md does not mention {name}"
    for command in (
        "ray up cluster/aws.yaml",
        "ray job submit",
        "ray job logs -f",
        "ray dashboard cluster/aws.yaml",
        "kubectl apply -f cluster/kuberay/rayjob.yaml",
    ):
        assert command in text, f"cluster/README.md does not show `{command}`"
    assert re.search(r"estimate", text, re.I) and "GPU-hours" in text
