"""Classifier backbones: torchvision and timm models with a new head, any input channel count,
pretrained weights from a local file only, and the Grad-CAM target layer of each.

Weights are loaded into the architecture exactly as published (1000-class head, RGB stem) and
only then adapted, so a weights file that does not fit fails loudly instead of loading nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from sonoflow.checkpoints import load_state_dict
from sonoflow.weights import resolve_weights

log = logging.getLogger("sonoflow.models")



def _swin_to_nchw(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.permute(0, 3, 1, 2)  # torchvision's Swin keeps (B, H, W, C)


def _vit_to_nchw(tensor: torch.Tensor) -> torch.Tensor:
    tokens = tensor[:, 1:, :]  # drop the class token
    side = int(round(tokens.shape[1] ** 0.5))
    return tokens.reshape(tensor.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[int], nn.Module]  # input_size -> the architecture with its original head
    head: str  # dotted path of the final classification layer
    cam_target: Callable[[nn.Module], list[nn.Module]]
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None
    min_input: int = 32
    source: str = "torchvision"


def _tv(name: str, **kwargs) -> Callable[[int], nn.Module]:
    def build(input_size: int) -> nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kwargs)

    return build


def _vit(input_size: int) -> nn.Module:
    import torchvision

    if input_size % 16:
        raise ValueError(f"vit_b_16 needs an input size that is a multiple of 16, got {input_size}")
    return torchvision.models.vit_b_16(weights=None, image_size=input_size)


def _timm(name: str) -> Callable[[int], nn.Module]:
    def build(input_size: int) -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


REGISTRY: dict[str, ModelSpec] = {
    "resnet18": ModelSpec(_tv("resnet18"), "fc", lambda m: [m.layer4[-1]]),
    "resnet50": ModelSpec(_tv("resnet50"), "fc", lambda m: [m.layer4[-1]]),
    "resnet101": ModelSpec(_tv("resnet101"), "fc", lambda m: [m.layer4[-1]]),
    "vgg16": ModelSpec(_tv("vgg16"), "classifier.6", lambda m: [m.features[-1]]),
    "vgg19_bn": ModelSpec(_tv("vgg19_bn"), "classifier.6", lambda m: [m.features[-1]]),
    "alexnet": ModelSpec(_tv("alexnet"), "classifier.6", lambda m: [m.features[-1]], min_input=64),
    "densenet121": ModelSpec(_tv("densenet121"), "classifier", lambda m: [m.features[-1]]),
    # Auxiliary heads exist for loading published weights; they are removed after loading.
    "inception_v3": ModelSpec(_tv("inception_v3", aux_logits=True, init_weights=False), "fc",
                              lambda m: [m.Mixed_7c], min_input=75),
    "googlenet": ModelSpec(_tv("googlenet", aux_logits=True, init_weights=False), "fc", lambda m: [m.inception5b]),
    "mobilenet_v2": ModelSpec(_tv("mobilenet_v2"), "classifier.1", lambda m: [m.features[-1]]),
    "convnext_tiny": ModelSpec(_tv("convnext_tiny"), "classifier.2", lambda m: [m.features[-1]]),
    "swin_t": ModelSpec(_tv("swin_t"), "head", lambda m: [m.norm], reshape=_swin_to_nchw),
    "vit_b_16": ModelSpec(_vit, "heads.head", lambda m: [m.encoder.layers[-1].ln_1], reshape=_vit_to_nchw),
    **{f"efficientnet_lite{n}": ModelSpec(_timm(f"efficientnet_lite{n}"), "classifier", lambda m: [m.conv_head],
                                          source="timm") for n in range(3)},
}
MODEL_NAMES = tuple(REGISTRY)


def model_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    return REGISTRY[name]


def _weights_only(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def map_by_position(source: dict[str, torch.Tensor], target_model: nn.Module) -> dict[str, torch.Tensor]:
    """Keys of another implementation of the same network (e.g. EfficientNet-PyTorch's
    `_conv_stem`, `_blocks.N`) mapped onto ``target_model`` in order; every shape must match."""
    ours = _weights_only(target_model.state_dict())
    theirs = _weights_only(source)
    if len(ours) != len(theirs):
        raise ValueError(f"weights have {len(theirs)} tensors, the model {len(ours)}: not the same network")
    mapped = {}
    for (our_key, our_value), (their_key, their_value) in zip(ours, theirs):
        if our_value.shape != their_value.shape:
            raise ValueError(f"shape mismatch mapping {their_key} {tuple(their_value.shape)} onto {our_key} "
                             f"{tuple(our_value.shape)}: not the same network")
        mapped[our_key] = their_value
    return mapped


def load_pretrained(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load a published state dict into the unmodified architecture; strict, so nothing is skipped."""
    if any(key.startswith("_conv_stem") for key in state):  # EfficientNet-PyTorch key layout
        state = map_by_position(state, model)
        model.load_state_dict(state, strict=False)
        log.info("loaded %d tensors from %s by position", len(state), path)
        return
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights {path} do not fit this model: {len(missing)} missing keys (e.g. {missing[:3]}), "
                         f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})")
    log.info("loaded %d tensors from %s", len(state), path)


def _get(module: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def head_module(model: nn.Module, name: str) -> nn.Module:
    """The classifier's last layer (its input: the features the model decides on)."""
    return _get(model, model_spec(name).head)


def replace_module(model: nn.Module, dotted: str, value: nn.Module) -> None:
    """Put ``value`` where ``dotted`` (e.g. "classifier.6") is in ``model``."""
    _set(model, dotted, value)


def _set(module: nn.Module, dotted: str, value: nn.Module) -> None:
    parent, _, last = dotted.rpartition(".")
    owner = _get(module, parent) if parent else module
    if last.isdigit():
        owner[int(last)] = value
    else:
        setattr(owner, last, value)


def _replace_head(model: nn.Module, head: str, num_classes: int) -> None:
    old = _get(model, head)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"head {head} is {type(old).__name__}, expected Linear")
    _set(model, head, nn.Linear(old.in_features, num_classes))


def adapt_input_channels(model: nn.Module, in_channels: int) -> None:
    """Make the RGB stem take ``in_channels``: the kernel summed over RGB and shared equally, so a
    gray image repeated on every channel gives exactly the pretrained RGB response."""
    name, stem = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3)
    if in_channels == 3:
        return
    new = nn.Conv2d(in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, stem.dilation,
                    stem.groups, stem.bias is not None, stem.padding_mode)
    with torch.no_grad():
        new.weight.copy_(stem.weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels)
        if stem.bias is not None:
            new.bias.copy_(stem.bias)
    _set(model, name, new)


def build_model(name: str, num_classes: int, *, in_channels: int = 1, weights: str | None = None,
                input_size: int = 224) -> nn.Module:
    """The backbone with a ``num_classes`` head taking (B, in_channels, H, W)."""
    spec = model_spec(name)
    if input_size < spec.min_input:
        raise ValueError(f"{name} needs inputs of at least {spec.min_input} px, got {input_size}")
    model = spec.build(input_size)
    path = resolve_weights(weights, name)
    if path is not None:
        state = load_state_dict(path, "pretrained weights")
        if name == "vit_b_16":  # published at 224 px: interpolate the position embeddings
            from torchvision.models.vision_transformer import interpolate_embeddings

            state = interpolate_embeddings(model.image_size, model.patch_size, state)
        load_pretrained(model, state, path)
    for aux in ("AuxLogits", "aux1", "aux2"):  # inception_v3 / googlenet: main output only
        if hasattr(model, aux):
            setattr(model, aux, None)
            model.aux_logits = False
    if spec.source == "timm":
        model.reset_classifier(num_classes)
    else:
        _replace_head(model, spec.head, num_classes)
    adapt_input_channels(model, in_channels)
    return model


def cam_target(model: nn.Module, name: str) -> tuple[list[nn.Module], Callable | None]:
    """Grad-CAM target layers and reshape transform (pytorch-grad-cam's conventions)."""
    spec = model_spec(name)
    return spec.cam_target(model), spec.reshape


def load_checkpoint_into(model: nn.Module, path: str) -> None:
    """Chained transfer: initialise from another run's checkpoint, skipping tensors whose shape
    differs (a head for another class count). Refuses a checkpoint that mostly does not fit."""
    checkpoint = Path(path)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint to initialise from not found: {checkpoint}")
    state = load_state_dict(checkpoint, "checkpoint to initialise from")
    ours = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in ours and ours[k].shape == v.shape}
    if len(fitting) < 0.5 * len(ours):
        raise ValueError(f"checkpoint {checkpoint} fits only {len(fitting)} of {len(ours)} tensors: another architecture?")
    model.load_state_dict(fitting, strict=False)
    skipped = sorted(set(ours) - set(fitting))
    log.info("initialised from %s (%d tensors; not taken: %s)", checkpoint, len(fitting), skipped[:4] or "none")
