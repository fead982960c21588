"""The software stack of a run: which third-party packages its code imports (found statically, so
that imports inside functions, such as the weights packages, count too), their versions, and the
CUDA stack (CUDA and cuDNN versions, driver, GPU model) when CUDA is used.

The workflow's environment files (envs/*.yaml) are checked against the same import analysis by
the unit tests: every package a rule's script imports, directly or through the sonoflow library,
is listed in the rule's environment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable

LIBRARY = "sonoflow"
LIBRARY_DIR = Path(__file__).resolve().parent


def top_level_imports(path: str | os.PathLike) -> set[str]:
    """Dotted names of every absolute import in a Python file, at any depth (functions too), and
    the packages a ``PACKAGED_WEIGHTS`` table names (weights found with importlib, not imported)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PACKAGED_WEIGHTS" for t in node.targets):
            names.update(package for package, _ in ast.literal_eval(node.value).values())
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            # `from sonoflow import cam` names the module sonoflow.cam
            names.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == LIBRARY)
    return names


def imports_of(paths: Iterable[str | os.PathLike], library_dir: str | os.PathLike = LIBRARY_DIR) -> set[str]:
    """The top-level names of the third-party modules that ``paths`` import, following imports of
    the sonoflow library through its modules (standard library and sonoflow itself excluded)."""
    library_dir = Path(library_dir)
    pending, seen, found = [Path(p) for p in paths], set(), set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in top_level_imports(path):
            top = name.split(".")[0]
            if top == LIBRARY:
                parts = name.split(".")[1:]
                module = library_dir.joinpath(*parts).with_suffix(".py") if parts else library_dir / "__init__.py"
                if module.is_file():
                    pending.append(module)
                elif (library_dir.joinpath(*parts) / "__init__.py").is_file():
                    pending.append(library_dir.joinpath(*parts) / "__init__.py")
            elif top not in sys.stdlib_module_names and top != "snakemake":
                found.add(top)
    return found


@lru_cache(maxsize=1)
def _distributions_by_module() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_of(module: str) -> str:
    """The installed distribution (pip name) that provides a top-level module, e.g. cv2 ->
    opencv-python-headless; a module of no installed distribution is an error."""
    names = _distributions_by_module().get(module)
    if not names:
        raise LookupError(f"no installed distribution provides the module {module!r}")
    return sorted(set(names))[0]


def imported_packages(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """Distribution -> version for every third-party package that ``paths`` import."""
    out = {}
    for module in sorted(imports_of(paths)):
        name = distribution_of(module)
        out[name] = importlib.metadata.version(name)
    return dict(sorted(out.items()))


def cuda_stack() -> dict:
    """CUDA and cuDNN versions, driver and GPU models when CUDA is available to torch; else
    {"available": False}. The driver comes from nvidia-smi (None when it cannot be asked)."""
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "torch_cuda_build": torch.version.cuda}
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, check=True, timeout=30).stdout.split("\n")[0].strip()
    except (OSError, subprocess.SubprocessError):
        driver = None
    return {"available": True, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "driver": driver,
            "gpus": [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]}
