"""Self-supervised pretraining: the loss, what it learns, which frames it may read, and resume."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from sonoflow.models import build_model
from sonoflow.pretrain import PretrainSettings, SimCLR, nt_xent, pretrain, pretrain_fold
from sonoflow.train import AugmentSettings

QUICK = PretrainSettings(epochs=2, batch_size=8, patience=5, augment=AugmentSettings(hflip=0.5, translate=0.1, gain=0.3))


def test_nt_xent_is_low_when_each_view_is_closest_to_its_partner():
    torch.manual_seed(0)
    z = torch.randn(16, 64)
    matched = nt_xent(z, z + 0.01 * torch.randn_like(z), 0.1)
    shuffled = nt_xent(z, z[torch.randperm(16)], 0.1)
    assert matched < 0.1 < shuffled
    # 2N - 1 candidates each: uniform similarities give log(2N - 1).
    assert nt_xent(torch.ones(4, 3), torch.ones(4, 3), 0.2) == pytest.approx(np.log(7), rel=1e-5)


def test_simclr_sets_the_head_aside_and_puts_it_back():
    model = build_model("efficientnet_lite0", 3, input_size=64)
    head = model.classifier
    simclr = SimCLR(model, "efficientnet_lite0", projection=16)
    assert isinstance(model.classifier, torch.nn.Identity)
    assert simclr(torch.randn(2, 1, 64, 64)).shape == (2, 16)
    assert simclr.classifier().classifier is head


def stripes(n: int, seed: int) -> np.ndarray:
    """Frames of two kinds (vertical or horizontal stripes) in noise, no labels given."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 60, (n, 32, 32)).astype(np.uint8)
    for i in range(n):
        if i % 2:
            frames[i, :, ::6] = 220
        else:
            frames[i, ::6, :] = 220
    return frames


def test_pretraining_lowers_the_contrastive_loss_and_keeps_the_head():
    model = build_model("resnet18", 2, input_size=32)
    head = model.fc.weight.detach().clone()
    settings = PretrainSettings(epochs=6, batch_size=16, lr=3e-3, patience=6, seed=0,
                                augment=AugmentSettings(hflip=0.5, translate=0.1, brightness=0.2, speckle=0.2))
    trained, history = pretrain(model, "resnet18", stripes(64, 0), stripes(32, 1), 32, settings)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_loss"].min() < history.at[0, "val_loss"]
    assert torch.equal(trained.fc.weight, head), "the head is the classifier's, untouched"
    assert history["best"].sum() == 1


class RecordingStore:
    """A frame store that records every frame it is asked for."""

    def __init__(self, size: int = 32):
        self.read, self.size = [], size

    def gather(self, frames: pd.DataFrame) -> np.ndarray:
        self.read.append(frames.copy())
        rng = np.random.default_rng(len(self.read))
        return rng.integers(0, 255, (len(frames), self.size, self.size), dtype=np.uint8)


def test_no_test_patients_frame_reaches_pretraining():
    patients = [f"P{i}" for i in range(9)]
    frames = pd.DataFrame([{"shard": "00", "row": 3 * i + f, "patient_id": p, "item_id": f"{p}_clip", "frame_index": f,
                            "label": "a" if i % 2 else "b"} for i, p in enumerate(patients) for f in range(3)])
    splits = {"labels": ["a", "b"], "test": ["P0", "P1"], "folds": [
        {"fold": 0, "train": ["P2", "P3", "P4", "P5"], "val": ["P6", "P7", "P8"]},
        {"fold": 1, "train": ["P6", "P7", "P8", "P5"], "val": ["P2", "P3", "P4"]}]}
    store = RecordingStore()
    _, _, seen = pretrain_fold(frames, splits, 0, store, "resnet18", ["a", "b"], 32, None, QUICK)
    read = pd.concat(store.read)
    assert not set(read["patient_id"]) & {"P0", "P1"}, "a test patient's frame was read"
    assert set(read["patient_id"]) == {"P2", "P3", "P4", "P5", "P6", "P7", "P8"}
    assert seen == {"train": ["P2", "P3", "P4", "P5"], "val": ["P6", "P7", "P8"]}


def test_killed_pretraining_resumes_to_the_same_result(tmp_path, caplog):
    caplog.set_level("INFO")
    frames, val = stripes(24, 0), stripes(8, 1)
    settings = PretrainSettings(epochs=3, batch_size=8, patience=5, augment=AugmentSettings(hflip=0.5, gain=0.3))
    _, whole = pretrain(build_model("resnet18", 2, input_size=32), "resnet18", frames, val, 32, settings)
    state = tmp_path / "state.pt"
    import sonoflow.loop as loop

    # Stop after epoch 2 by failing the third epoch's first step, then resume.
    calls = {"n": 0}
    original = loop.EpochBatches.on

    def failing(self, device):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, device)

    loop.EpochBatches.on = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(build_model("resnet18", 2, input_size=32), "resnet18", frames, val, 32, settings, resume_path=state)
    finally:
        loop.EpochBatches.on = original
    _, resumed = pretrain(build_model("resnet18", 2, input_size=32), "resnet18", frames, val, 32, settings, resume_path=state)
    # (ResumeSaver may skip a save that would cost over a tenth of the training time.)
    assert re.search(r"resuming from the state saved after epoch [12]\b", caplog.text)
    np.testing.assert_allclose(resumed["val_loss"], whole["val_loss"], rtol=1e-5)


def test_settings_refuse_an_unknown_start():
    with pytest.raises(ValueError, match="pretrain.start"):
        PretrainSettings(start="imagenet21k")
    assert PretrainSettings.from_config({"enabled": True, "gpu": False, "threads": 2, "start": "random"}).start == "random"
