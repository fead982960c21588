"""The run manifest: enough to tell later exactly what produced a results folder."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

PACKAGES = ("sonoflow", "torch", "torchvision", "timm", "segmentation-models-pytorch", "grad-cam", "snakemake",
            "scikit-learn", "numpy", "pandas", "opencv-python-headless", "pydicom", "scikit-image")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(folder: str | os.PathLike) -> dict:
    """Commit of the workflow's checkout and whether it had uncommitted changes; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def file_digest(paths: Iterable[str | os.PathLike]) -> str:
    """SHA-256 over the contents of the files, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def run_manifest(config: Mapping, workflow_dir: str | os.PathLike, sheet: Mapping,
                 arrays: Iterable[str | os.PathLike]) -> dict:
    """Config, package versions, git revision, the sample sheet's digest (``sheet``: from
    sonoflow.sheet.sheet_digest) and a hash of the ingested arrays (the pixels every model saw)."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": dict(config),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git": git_revision(workflow_dir),
        "sample_sheet": dict(sheet),
        "data_sha256": file_digest(sorted(str(Path(p)) for p in arrays)),
    }
