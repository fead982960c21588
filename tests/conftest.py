import collections
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

from sonoflow.config import DEFAULT_CONFIG
from sonoflow.presets import merge

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist each worker is one of several processes on the cores: one OpenMP thread each.
# Two-thread torch processes on an oversubscribed machine wait for each other's threads (the
# demo U-Net's epoch: 308 s with 2 threads, 6 s with 1, same load; README "Measured"). Snakemake
# jobs still set their own thread count from the rule.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

# The smallest demo that still exercises every stage: 3 patients per class (one held out for
# test with this seed, two for two folds), short clips, small frames, two quick epochs.
TINY_CONFIG = {
    "demo": {"patients_per_class": 3, "images_per_patient": 1, "clips_per_patient": 1, "frames_per_clip": 6, "seed": 0},
    "shards": 3,
    "ingest": {"size": 64, "resize": "pad", "step": 1, "fps": None, "max_frames": 4,
               "dedup_threshold": 2.0, "crop": True, "previews": 1},
    "split": {"seed": 41, "test_fraction": 0.25, "folds": 2},
    # One U-Net for both inputs (per_fold auto would train one per fold for the roi run: a dry-run test covers that).
    "segment": {"input_size": 64, "epochs": 2, "steps_per_epoch": 2, "batch_size": 8, "threads": 1, "per_fold": False,
                # the demo's planned U-Net, pinned: a user sheet of the same rows then plans nothing else
                "encoder": "resnet18", "weights": None, "decoder_channels": [128, 64, 32, 16, 8], "patience": 4,
                "min_delta": 0.01},
    # full and roi: both CAM geometries. `both` (stacked channels) trains in no full run: its DAG is
    # checked by a dry run (test_demo_workflow.py), its stacked store and a two-channel training run
    # by tests/unit/test_dataset.py.
    # lr and patience pinned to the demo's plan, as the U-Net's above: a user sheet of the same rows retrains nothing.
    "train": {"models": ["efficientnet_lite0"], "inputs": ["full", "roi"], "epochs": 2, "input_size": 64,
              "batch_size": 16, "threads": 1, "lr": 0.001, "patience": 4},
    "evaluate": {"n_boot": 200},
    "cam": {"per_kind": 1, "max_images": 40, "road_images": 4, "road_percentiles": [50]},
}


def run_snakemake(workdir: Path, *args: str, config: dict | None = None, check: bool = True, timeout: int = 900):
    """Run the repository's Snakefile in ``workdir`` with the tiny config layered on top."""
    configfile = workdir / "tiny_config.yaml"
    configfile.write_text(yaml.safe_dump(merge(TINY_CONFIG, config or {})))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(DEFAULT_CONFIG), str(configfile),
           "--cores", "2", "--workflow-profile", str(REPO / "workflow/profiles/default"), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Test data helpers shared by several test modules (`from conftest import write_dicom`: pytest puts
# tests/ on sys.path when it loads this file).


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", frame_time_ms: float | None = None,
                bits_stored: int | None = None, pixel_data: bool = True) -> Path:
    """An uncompressed DICOM: (n, h, w) gray or (n, h, w, 3) colour, 8 or 16 bit, multi-frame when n > 1."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape[1:3]
    ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 3 if pixels.ndim == 4 else 1
    if pixels.ndim == 4:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = 16 if pixels.dtype == np.uint16 else 8
    stored = bits_stored or bits
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, stored, stored - 1, 0
    if frame_time_ms:
        ds.FrameTime = frame_time_ms
    if pixel_data:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One full run of the tiny demo DAG, shared by the workflow tests that only read it."""
    workdir = tmp_path_factory.mktemp("demo_run")
    run_snakemake(workdir)
    return workdir


def planned_jobs(workdir: Path, *args: str, config: dict | None = None) -> dict[str, int]:
    """Rule -> job count of what a dry run would execute now (empty when nothing is stale).

    Counts the per-job ``rule NAME:`` blocks of the dry run (the job stats table is not printed
    by every snakemake version).
    """
    result = run_snakemake(workdir, "--dry-run", *args, config=config)
    names = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", result.stdout, re.MULTILINE)
    if not names:
        assert "Nothing to be done" in result.stdout + result.stderr, result.stdout + result.stderr
    return dict(collections.Counter(names))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups to schedule them
def pytest_collection_modifyitems(config, items):
    """The SLURM tests last, on the shared demo run's worker (they compare with that run). Their
    cluster's `down` removes the slurm.conf it wrote: left behind, it made every later snakemake
    start wait ~9 s, because the executor plugin asks `scontrol` on import.

    Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`), the tests that read the shared
    demo run form one group and go to one worker, so the demo DAG runs once, not once per worker;
    every other test is spread over the workers as they come free."""
    items.sort(key=lambda item: "slurm" in item.nodeid.split("::")[0].split("/"))
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("demo_run"))
