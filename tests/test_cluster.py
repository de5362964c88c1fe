"""cluster/: the launcher YAMLs pass Ray's own cluster-config validation, the KubeRay RayJob is well
formed and pins what pyproject.toml pins, and a real single-node cluster (``ray start --head`` on
loopback, token authentication on) runs ``ray job submit ... -- hac train`` to completion.

The real-cluster test starts its own head with its own temp dir, ports and token, so it neither
touches the test session's ``ray_session`` nor anyone else's Ray on the machine. It does not call
``ray stop``: that kills every Ray process of the user on the host. It ends exactly the processes it
started, by their process group.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHER_YAMLS = sorted(p for p in CLUSTER.glob("*.yaml") if yaml.safe_load(p.read_text()).get("provider"))
RAYJOB = CLUSTER / "kuberay-rayjob.yaml"


def _pins() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


# --- launcher YAMLs (offline, ~1 s) ----------------------------------------------------------------


def test_there_are_aws_gcp_and_onprem_configs():
    assert {yaml.safe_load(p.read_text())["provider"]["type"] for p in LAUNCHER_YAMLS} == {"aws", "gcp", "local"}


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_yaml_passes_rays_validation(path):
    """The same two steps `ray up` runs before it talks to a cloud: defaults filled in, schema checked."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(path.read_text())
    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]
    if raw["provider"]["type"] == "local":
        assert "available_node_types" not in raw  # Ray rejects node types for on-prem clusters


@pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
def test_launcher_yaml_installs_the_pins_and_distributes_the_token(path):
    raw = yaml.safe_load(path.read_text())
    setup = "\n".join(raw["setup_commands"])
    assert "pip install" in setup and "-e ~/hac-rllib" in setup  # pyproject.toml's exact pins
    assert "'2.60.0'" in setup and "'2.13.0'" in setup  # and the install is checked
    assert raw["file_mounts"]["~/hac-rllib"] == "."
    assert raw["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in raw[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start), key
    assert any("--head" in c for c in raw["head_start_ray_commands"])
    assert all("--address=$RAY_HEAD_IP:6379" in c for c in raw["worker_start_ray_commands"] if "ray start" in c)
    image = (raw.get("docker") or {}).get("image")
    assert image is None or image.startswith("rayproject/ray:2.60.0-py311")


# --- KubeRay RayJob --------------------------------------------------------------------------------


def test_rayjob_manifest():
    job = yaml.safe_load(RAYJOB.read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("hac tune ")
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]] + [spec["submitterPodTemplate"]]
    for pod in pods:
        for c in pod["spec"]["containers"]:
            assert c["image"].startswith("rayproject/ray:2.60.0"), c["image"]
            env = {e["name"]: e for e in c["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hac-ray-auth"

    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    from ray.runtime_env import RuntimeEnv

    RuntimeEnv(**runtime_env)  # Ray's own validation of the runtime environment
    packages = runtime_env["pip"]["packages"]
    assert _pins() <= set(packages), _pins() - set(packages)  # the same exact pins as pyproject.toml
    assert any(p.startswith("hac-rllib @ ") for p in packages)


def test_rayjob_entrypoint_is_a_valid_hac_tune_command(tmp_path):
    """The manifest's command line parses with the real CLI (checked with --dry-run)."""
    import shlex

    from typer.testing import CliRunner

    from hac_rllib.cli import app

    args = shlex.split(yaml.safe_load(RAYJOB.read_text())["spec"]["entrypoint"])[1:]
    args = [str(tmp_path / "sweep") if a.startswith("/mnt/hac/sweeps") else a for a in args]
    res = CliRunner().invoke(app, args + ["--dry-run"])
    assert res.exit_code == 0, res.output


# --- a real cluster: ray start --head + ray job submit ---------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _run(args, env, timeout=120, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def _stop_process_group(pgid: int, grace_s: float = 3.0) -> None:
    """End the head's processes (all in the process group ``ray start`` was started in): SIGTERM, and
    SIGKILL for what is left after ``grace_s`` (the GCS and raylet of a throw-away head often are)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + grace_s
        while time.time() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.25)


@pytest.fixture(scope="module")
def job_working_dir(tmp_path_factory) -> Path:
    """What a user ships with --working-dir: here just a small simulator (under 1 MB)."""
    from envs.data.synthetic import SyntheticParams, write_synthetic
    from envs.response import TrainConfig, train_response_model

    root = tmp_path_factory.mktemp("job")
    data = write_synthetic(root / "data", SyntheticParams(n_users=200, n_items=300, n_records=4000))
    wd = root / "workdir"
    wd.mkdir()
    train_response_model(data, "train", train_config=TrainConfig(epochs=1)).save(wd / "sim.pt")
    return wd


@pytest.mark.slow
def test_ray_job_submit_hac_train_on_a_loopback_cluster(job_working_dir, tmp_path):
    """ray start --head (token auth) -> ray job submit --working-dir -- hac train -> poll -> read the
    result back twice: from the job's logs and from the run's results.jsonl."""
    bindir = Path(sys.executable).parent
    token = secrets.token_hex(32)
    temp_dir = Path(tempfile.mkdtemp(prefix="hacray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    gcs, dash, agent, agent_grpc, client, metrics, rt_agent, node_mgr, obj_mgr = _free_ports(9)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",  # `hac` inside the job
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep node, GCS and dashboard on 127.0.0.1
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,  # this cluster's own token; ~/.ray/auth_token is neither read nor written
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    address = f"http://127.0.0.1:{dash}"
    out = tmp_path / "run"
    head = None
    try:
        t0 = time.time()
        head = subprocess.Popen(
            [bindir / "ray", "start", "--head", "--num-cpus=2", f"--temp-dir={temp_dir}", f"--port={gcs}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent}",
             f"--dashboard-agent-grpc-port={agent_grpc}", f"--ray-client-server-port={client}", f"--metrics-export-port={metrics}",
             f"--runtime-env-agent-port={rt_agent}", f"--node-manager-port={node_mgr}", f"--object-manager-port={obj_mgr}",
             "--object-store-memory=100000000", "--disable-usage-stats"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        started = head.communicate(timeout=120)[0]
        assert head.returncode == 0, started[-3000:]
        t_start = time.time() - t0

        # Token auth is really on: a client with another token is turned away.
        wrong = _run([bindir / "ray", "job", "list", "--address", address], {**env, "RAY_AUTH_TOKEN": "0" * 64}, check=False)
        assert wrong.returncode != 0 and re.search(r"(?i)auth|token|unauthori", wrong.stdout + wrong.stderr)

        job_id = f"hac-train-{secrets.token_hex(4)}"
        entrypoint = (
            f"hac train --train-simulator sim.pt --eval-simulator sim.pt --iterations 2 --steps-per-iteration 5 "
            f"--eval-sessions 20 --checkpoint-every 2 --out {out} "
            f"--set num_steps_sampled_before_learning_starts=64 --set train_batch_size_per_learner=16"
        )
        _run([bindir / "ray", "job", "submit", "--address", address, "--working-dir", str(job_working_dir),
              "--submission-id", job_id, "--no-wait", "--", *entrypoint.split()], env)
        deadline, state = time.time() + 240, None
        while time.time() < deadline and state is None:  # `ray job status` prints e.g. "Job 'x' succeeded"
            status = _run([bindir / "ray", "job", "status", job_id, "--address", address, "--log-style", "record"], env).stdout
            m = re.search(r"(?i)job '[^']+' (succeeded|failed|stopped)", status)
            state = m.group(1).lower() if m else time.sleep(2)
        logs = _run([bindir / "ray", "job", "logs", job_id, "--address", address, "--log-style", "record"], env).stdout
        assert state == "succeeded", f"{state}\n{logs[-4000:]}"
        t_job = time.time() - t0 - t_start

        final = re.search(r"final: iteration=2, .*eval/total_reward=(-?[\d.e+-]+)", logs)
        assert final, logs[-3000:]
        lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
        assert [x["iteration"] for x in lines] == [1, 2]
        assert float(final.group(1)) == pytest.approx(lines[-1]["eval/total_reward"], abs=1e-3)
        assert (out / "checkpoints" / "latest").is_file()
        print(f"ray start {t_start:.1f} s, job submit -> SUCCEEDED {t_job:.1f} s")
    finally:
        if head is not None:
            _stop_process_group(head.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)
