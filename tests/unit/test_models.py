import numpy as np
import pytest
import torch
import torchvision

from sonoflow.models import (MODEL_NAMES, build_model, cam_target, load_checkpoint_into, map_by_position,
                             model_spec, resolve_weights)


def input_size(name: str) -> int:
    return max(model_spec(name).min_input, 32)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_builds_for_grayscale_with_a_new_head(name):
    size = input_size(name)
    model = build_model(name, 3, in_channels=1, input_size=size).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, 3)
    layers, _ = cam_target(model, name)
    assert layers and all(isinstance(layer, torch.nn.Module) for layer in layers)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradcam_runs_on_every_model_as_the_cam_rule_runs_it(name):
    """Every backbone in the registry, CNN or transformer, through sonoflow's own Grad-CAM call
    (one input channel, the registry's target layer and reshape): one finite map in [0, 1] per
    image at the input size. The preset tests run Grad-CAM only where the study reported heatmaps,
    so this is where each architecture's CAM wiring is checked.

    sonoflow's call starts autograd at the target layer with the weights frozen (cam.graph_from):
    its maps must equal pytorch-grad-cam's own full backward pass, and the model must come out
    with every parameter trainable again."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from sonoflow.cam import cam_methods, compute_cams

    size = max(2 * input_size(name), 64)  # at their smallest, AlexNet's and Inception's last maps are 1x1: constant CAMs
    torch.manual_seed(0)
    model = build_model(name, 2, in_channels=1, input_size=size).eval()
    x = torch.randn(2, 1, size, size)
    layers, reshape = cam_target(model, name)
    # scorecam is left out: one forward pass per channel of the target layer (2,048 for ResNet50).
    for method in ("gradcam", "gradcam++", "layercam", "eigencam"):
        # The reference first, on the untouched model: a hook left behind could not shape it.
        with cam_methods()[method](model=model, target_layers=layers, reshape_transform=reshape) as cam:
            reference = np.nan_to_num(cam(input_tensor=x, targets=[ClassifierOutputTarget(0), ClassifierOutputTarget(1)]))
        cams = compute_cams(model, name, x, [0, 1], method)
        assert cams.shape == (2, size, size) and np.isfinite(cams).all()
        assert cams.min() >= 0 and cams.max() <= 1
        np.testing.assert_allclose(cams, reference, atol=1e-4, err_msg=method)
        assert cams.std() > 0, method  # a map, not a constant that would equal any other constant
    assert all(p.requires_grad for p in model.parameters())
    assert not any(layer._forward_hooks for layer in layers), "no hook left on the target layer"


def test_cam_backward_starts_at_the_target_layer_and_computes_no_weight_gradient():
    """What makes sonoflow's Grad-CAM cheap (cam.graph_from): inside it a backward pass leaves
    every weight without a gradient, and the target layer's output is where the graph starts."""
    from sonoflow.cam import graph_from

    torch.manual_seed(0)
    model = build_model("resnet18", 2, in_channels=1, input_size=64).eval()
    layers, _ = cam_target(model, "resnet18")
    seen = []
    with graph_from(model, layers):
        # After graph_from's own hook, as pytorch-grad-cam's are: it sees the output the graph starts from.
        probe = layers[0].register_forward_hook(lambda module, inputs, output: seen.append(output))
        model(torch.randn(2, 1, 64, 64))[:, 0].sum().backward()
        probe.remove()
    assert all(p.grad is None for p in model.parameters()), "no weight gradient computed"
    assert type(seen[0].grad_fn).__name__ == "CloneBackward0", "the graph starts at the target layer's output"
    assert all(p.requires_grad for p in model.parameters()) and not layers[0]._forward_hooks


def test_packaged_efficientnet_lite0_weights_are_loaded_by_position():
    path = resolve_weights("efficientnet-lite0-package")
    published = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model("efficientnet_lite0", 4, in_channels=1, weights="efficientnet-lite0-package", input_size=64)
    assert len(published) == 296  # 247 weights and statistics + 49 num_batches_tracked counters
    # The 1-channel stem is the published RGB stem summed over colour.
    torch.testing.assert_close(model.conv_stem.weight, published["_conv_stem.weight"].sum(1, keepdim=True))
    # A tensor deep in the network arrived unchanged, and BatchNorm statistics are the trained ones.
    torch.testing.assert_close(model.conv_head.weight, published["_conv_head.weight"])
    torch.testing.assert_close(model.bn2.running_var, published["_bn1.running_var"])
    assert model.classifier.out_features == 4


def test_position_mapping_refuses_another_network():
    import timm

    resnet = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(ValueError, match="not the same network"):
        map_by_position(resnet, timm.create_model("efficientnet_lite0", pretrained=False))


def test_missing_weights_are_an_error_never_a_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights not found at .*never downloaded"):
        build_model("resnet18", 2, weights=str(tmp_path / "resnet18.pth"))


def test_torchvision_state_dict_round_trip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = build_model("resnet18", 4, in_channels=3, weights=str(path), input_size=64)
    torch.testing.assert_close(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert model.fc.out_features == 4
    with pytest.raises(ValueError, match="do not fit"):
        build_model("vgg16", 2, weights=str(path), input_size=64)


def test_grayscale_model_equals_rgb_model_on_repeated_gray(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "r.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    rgb = build_model("resnet18", 3, in_channels=3, weights=str(path), input_size=64).eval()
    gray = build_model("resnet18", 3, in_channels=1, weights=str(path), input_size=64).eval()
    two = build_model("resnet18", 3, in_channels=2, weights=str(path), input_size=64).eval()
    gray.fc.load_state_dict(rgb.fc.state_dict())
    two.fc.load_state_dict(rgb.fc.state_dict())
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gray(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(two(x.repeat(1, 2, 1, 1)), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)


def test_chained_transfer_skips_a_head_of_another_size(tmp_path):
    first = build_model("resnet18", 5, input_size=64)
    path = tmp_path / "best.pt"
    torch.save({"model": first.state_dict()}, path)
    second = build_model("resnet18", 2, input_size=64)
    load_checkpoint_into(second, str(path))
    torch.testing.assert_close(second.layer4[0].conv1.weight, first.layer4[0].conv1.weight)
    assert second.fc.out_features == 2
    with pytest.raises(ValueError, match="another architecture"):
        load_checkpoint_into(build_model("mobilenet_v2", 2, input_size=64), str(path))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*resnet18"):
        build_model("resnet9000", 2)


def test_config_schema_knows_exactly_the_registered_models():
    from sonoflow.config import load_schema

    schema = load_schema()
    assert schema["properties"]["train"]["properties"]["models"]["items"]["enum"] == list(MODEL_NAMES)
