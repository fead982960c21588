"""benchmarks/gpu_check.sh: loud failure without CUDA; its Python part runs the real loops."""

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks/gpu_check.sh"


def run_check(tmp_path, path_dirs):
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "", "PATH": os.pathsep.join(path_dirs)}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)


def fake_nvidia_smi(folder: Path) -> Path:
    """An nvidia-smi that lists a GPU and reports 50% busy, so the next check (torch) is reached."""
    folder.mkdir()
    tool = folder / "nvidia-smi"
    tool.write_text("#!/bin/sh\ncase \"$*\" in *-L*) echo 'GPU 0: Fake';; *) echo 50;; esac\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return folder


def system_path_without_nvidia_smi() -> list[str]:
    return [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]


def test_fails_loudly_without_a_driver(tmp_path):
    result = run_check(tmp_path, system_path_without_nvidia_smi())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gpu_check: FAILED: nvidia-smi not found" in result.stderr


def test_fails_loudly_when_torch_sees_no_cuda(tmp_path):
    # A driver that answers, but CUDA_VISIBLE_DEVICES="" hides every device from torch.
    result = run_check(tmp_path, [str(fake_nvidia_smi(tmp_path / "bin")), *system_path_without_nvidia_smi()])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gpu_check: FAILED: torch" in result.stderr and "sees no CUDA device" in result.stderr
    assert "images/s" not in result.stdout


def load_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_phases_run_sonoflows_loops_and_the_sampler_reads_nvidia_smi(tmp_path, monkeypatch):
    check = load_check()
    # The CPU side of each phase, tiny: what the GPU run does, minus the device.
    assert check.classifier_phase("cpu", images=8, epochs=2, size=32, batch=4) > 0
    assert check.segmenter_phase("cpu", images=8, epochs=2, size=32, batch=4) > 0
    monkeypatch.setenv("PATH", f"{fake_nvidia_smi(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}")
    with check.UtilisationSampler(0, interval=0.05) as sampler:
        import time

        time.sleep(0.5)
    assert sampler.samples and set(sampler.samples) == {50.0}
    assert "mean 50% p10 50%" in sampler.summary()


def test_generated_data_has_something_to_learn():
    check = load_check()
    frames, labels = check.classifier_data(8, 32)
    assert frames[labels == 1].mean() > frames[labels == 0].mean() + 5
    images, masks = check.segmenter_data(4, 64)
    assert masks.any(axis=(1, 2)).all()
    assert images[masks == 1].mean() < images[masks == 0].mean() - 30
    assert np.isin(masks, [0, 1]).all()
