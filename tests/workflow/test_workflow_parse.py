"""Snakemake parses the workflow at every start: a dry run, a local run, and on SLURM twice per job
(once in the job, once more in its srun step). The parse imports none of the heavy libraries, which
only the jobs' scripts need: with torch and scikit-learn it took 4.8 s instead of 1.7 s."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.workflow
HEAVY = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "pytorch_grad_cam", "sklearn", "scipy")


def test_parsing_the_workflow_and_planning_the_demo_dag_imports_no_heavy_library(tmp_path):
    # -X importtime lists every module the process imports, one per line, on stderr.
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                             "-d", str(tmp_path), "-n", "--cores", "1"],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "checkpoint demo_data:" in result.stdout + result.stderr, result.stdout[-3000:]  # the DAG was planned
    imported = set(re.findall(r"^import time:.*\|\s+([\w.]+)$", result.stderr, flags=re.M))
    assert "sonoflow.stage_settings" in imported and "snakemake" in imported  # the listing is read right
    heavy = sorted(name for name in imported if name.split(".")[0] in HEAVY)
    assert not heavy, f"the workflow's parse imports {heavy[:10]}: move the import into the function that needs it"
