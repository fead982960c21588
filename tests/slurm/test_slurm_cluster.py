"""The whole demo DAG on a real single-node SLURM (slurmctld + slurmd on localhost, one fake GPU).

Runs when SONOFLOW_TEST_SLURM=1 (CI sets it): the fixture installs Debian's slurm packages if
needed and starts the daemons with .ci/slurm-local.sh, and stops them by PID afterwards, also when
a test fails. Needs root.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, TINY_CONFIG, merge
from sonoflow.config import DEFAULT_CONFIG

pytestmark = [
    pytest.mark.slurm,
    # Above pytest's 900 s: they now share the 2 cores with the other xdist worker's tests (make test).
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.environ.get("SONOFLOW_TEST_SLURM") != "1", reason="set SONOFLOW_TEST_SLURM=1 (needs root)"),
]
CLUSTER = REPO / ".ci/slurm-local.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm-state")
    env = {**os.environ, "SLURM_FAKE_GPU": "1", "SLURM_CI_DIR": str(state)}
    started = time.perf_counter()
    try:
        up = subprocess.run(["bash", str(CLUSTER), "up"], env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"SLURM up in {time.perf_counter() - started:.0f} s\n{up.stdout[-500:]}")
        yield state
    finally:
        subprocess.run(["bash", str(CLUSTER), "down"], env=env, capture_output=True, text=True, timeout=120)
        for name in ("slurmctld.pid", "slurmd.pid"):
            assert not (state / name).exists(), f"{name} left behind: daemon not stopped"
        # Left behind, it would make every later snakemake start wait ~9 s for the stopped controller.
        assert not Path("/etc/slurm/slurm.conf").exists(), "slurm.conf left behind"


def profile_command(workdir: Path, *configfiles: Path, targets: tuple[str, ...] = (), timeout: int = 1500) -> list[str]:
    """snakemake with the SLURM profile as shipped, on the tiny demo config. Only the threads
    differ: the node has 2 CPUs, and the local run gave every job 1 thread."""
    configfile = workdir / "tiny_config.yaml"
    configfile.write_text(yaml.safe_dump(merge(TINY_CONFIG, {})))
    # Targets first: the list-valued options at the end would swallow them.
    return ["timeout", "-k", "20", str(timeout), SNAKEMAKE, *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(DEFAULT_CONFIG), str(configfile), *map(str, configfiles),
            "--workflow-profile", str(REPO / "workflow/profiles/slurm"), "--jobs", "4", "--verbose",
            "--set-threads", "train=1", "train_segmenter=1"]


def profile_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(profile_command(workdir) + list(args), capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_demo_dag_through_slurm_matches_the_local_run(slurm, demo_run, tmp_path):
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    started = time.perf_counter()
    result = profile_run(workdir)
    seconds = time.perf_counter() - started
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]

    # Every job went through sbatch; the training jobs asked for a GPU.
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    calls = {re.search(r"--comment (\S+)", call).group(1): call for call in re.findall(r"sbatch call: (.*)", log)}
    print(f"SLURM run: {len(submitted)} jobs in {seconds:.0f} s; SLURM job ids {', '.join(j for _, j in submitted)}")
    train_calls = {name: call for name, call in calls.items() if name.startswith("rule_train_wildcards")}
    print("a training job's sbatch line:", next(iter(train_calls.values()), "none").split(" --wrap")[0])
    assert len(submitted) == len(calls) >= 20, log[-3000:]
    n_train = TINY_CONFIG["split"]["folds"] * len(TINY_CONFIG["train"]["inputs"])
    assert len(train_calls) == n_train
    asks_gpu = {name for name, call in calls.items() if re.search(r"--gpus[= ]1\b|--gres[= ]gpu", call)}
    assert set(train_calls) | {"rule_train_segmenter_wildcards_all"} == asks_gpu, sorted(asks_gpu)
    assert all(" -p debug" in call for call in calls.values()), "the profile's partition reaches every job"
    # The Snakefile's localrules (table-to-HTML pages, the joined frame table) ran in snakemake's
    # own process, never through sbatch; everything that reads frames or models was submitted.
    ran_here = set(re.findall(r"localrule (\w+):", log))
    through_sbatch = {re.sub(r"_wildcards_.*", "", name.removeprefix("rule_")) for name in calls}
    assert {"frames_table", "ingest_page", "evaluate_pages", "cam_page", "landing"} <= ran_here, sorted(ran_here)
    assert {"ingest", "denoise", "train_segmenter", "segment", "train", "evaluate", "cam", "manifest"} <= through_sbatch
    assert not ran_here & through_sbatch, sorted(ran_here & through_sbatch)

    # The results equal the local run with the same seed.
    for name in ("results/splits.json", "results/frames.csv"):
        assert (workdir / name).read_text() == (demo_run / name).read_text(), name
    for local in sorted(demo_run.glob("results/denoise/shard_*/frames.npy")):
        np.testing.assert_array_equal(np.load(local), np.load(workdir / local.relative_to(demo_run)))
    for local in sorted(demo_run.glob("results/train/*/*/fold_*/predictions_test.csv")):
        here = pd.read_csv(workdir / local.relative_to(demo_run))
        there = pd.read_csv(local)
        pd.testing.assert_frame_equal(here, there, check_exact=False, atol=1e-5)
    headline = pd.read_csv(workdir / "results/evaluate/efficientnet_lite0/full/headline.csv")
    assert len(headline) and (headline["part"] == "test").any()


def test_failed_job_is_retried_and_a_killed_training_job_resumes(slurm, demo_run, tmp_path):
    """SIGKILL one training job (its SLURM job) mid-run: snakemake resubmits it (retries: 1) and
    the retry continues from the last finished epoch; the killed job's output never counts."""
    workdir = tmp_path / "killed"
    shutil.copytree(demo_run, workdir, symlinks=True)
    longer = workdir / "longer.yaml"
    longer.write_text(yaml.safe_dump({"train": {"epochs": 30, "patience": 100}}))
    target = "results/train/efficientnet_lite0/full/fold_0/best.pt"
    state = workdir / "results/train/efficientnet_lite0/full/fold_0.resume.pt"
    proc = subprocess.Popen(profile_command(workdir, longer, targets=(target,), timeout=1200), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    import torch

    deadline = time.time() + 600
    while time.time() < deadline and not (state.exists() and torch.load(state, weights_only=True)["epoch"] >= 2):
        assert proc.poll() is None, f"snakemake ended early ({proc.returncode}):\n{proc.stdout.read()[-4000:]}"
        time.sleep(0.5)
    jobs = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True).stdout.split("\n")
    train_jobs = [line.split()[0] for line in jobs if "rule_train_wildcards" in line]
    assert train_jobs, jobs
    subprocess.run(["scancel", "--signal=KILL", "--full", train_jobs[0]], check=True)
    saved = torch.load(state, weights_only=True)["epoch"]
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-5000:]
    assert "Trying to restart job" in output, output[-3000:]  # retries: 1 in the profile
    log = (workdir / "results/logs/train/efficientnet_lite0/full/fold_0.log").read_text()
    resumed = int(log.split("resuming from the state saved after epoch ")[1].split()[0])
    assert resumed >= saved >= 2
    history = pd.read_csv(workdir / "results/train/efficientnet_lite0/full/fold_0/history.csv")
    assert history["epoch"].tolist() == list(range(1, 31))
