"""sonoflow installed as a wheel (not run from the checkout) finds its own data: the defaults, the
config schema and the study presets are package data, read with importlib.resources.

The wheel goes into a scratch venv whose dependencies come from the running venv (a .pth line
naming its site-packages: no torch copied, nothing downloaded). A plain path in a .pth file does
not run the .pth files of that folder, so an editable install of sonoflow there cannot shadow the
wheel; the test checks which sonoflow it imported anyway."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sonoflow.presets import preset_paths

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", "PIP_NO_INPUT": "1"}


def run(cmd: list, cwd: Path, env: dict) -> str:
    result = subprocess.run([str(part) for part in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def test_the_wheel_finds_its_config_schema_and_presets_outside_the_checkout(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PIP_ENV)
    # Build from a copy of what the wheel is made of: the build's by-products stay out of the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "sonoflow", source / "sonoflow", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source],
        tmp_path, env)
    (wheel,) = wheels.glob("sonoflow-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], tmp_path, env)
    # Only now the running venv's packages (torch, snakemake, ...) become visible to the scratch venv:
    # pip above saw a clean environment, with no sonoflow installed.
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             tmp_path, env).strip())
    dependencies = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_packages / "_sonoflow_test_dependencies.pth").write_text("".join(f"{path}\n" for path in dependencies))

    elsewhere = tmp_path / "elsewhere"  # not the checkout, not its parent
    elsewhere.mkdir()
    imported = Path(run([python, "-c", "import sonoflow; print(sonoflow.__file__)"], elsewhere, env).strip())
    assert imported.is_relative_to(venv), f"imported {imported}, not the wheel installed in {venv}"

    table = run([python, "-m", "sonoflow.presets"], elsewhere, env)
    assert table.startswith("| study |")
    names = [path.name for path in preset_paths()]
    assert names and all(f"`sonoflow/resources/presets/{name}`" in table for name in names), table
