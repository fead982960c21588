import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from sonoflow.train import (AugmentSettings, TrainSettings, augment_batch, class_weights, lr_factor,
                            normalise, as_unit_float, predict_proba, train_classifier, tta_views, validation_metrics)


def tiny_cnn(n_classes: int = 2) -> nn.Module:
    torch.manual_seed(0)  # the caller owns initialisation (run_fold seeds before build_model)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(128, n_classes))


def bright_vs_dark(n: int, seed: int = 0, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 has a bright square somewhere; class 0 does not. Learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 90, (n, size, size), dtype=np.uint8)
    labels = np.arange(n) % 2
    for i in np.flatnonzero(labels):
        y, x = rng.integers(2, size - 10, 2)
        frames[i, y : y + 8, x : x + 8] = 230
    return frames, labels


SETTINGS = TrainSettings(model="tiny", input_size=24, epochs=6, batch_size=16, lr=3e-3, patience=10, seed=1,
                         device="cpu", augment=AugmentSettings(rotate=5, translate=0.02, scale=0.05))


def test_augment_keeps_range_and_shape_and_is_seeded():
    x = torch.rand(5, 1, 20, 20)
    a = augment_batch(x, AugmentSettings(), torch.Generator().manual_seed(3))
    b = augment_batch(x, AugmentSettings(), torch.Generator().manual_seed(3))
    c = augment_batch(x, AugmentSettings(), torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_flip_only_is_an_exact_mirror():
    x = torch.rand(4, 1, 16, 16)
    flip_only = AugmentSettings(hflip=1.0, rotate=0, translate=0, scale=0, brightness=0, contrast=0)
    out = augment_batch(x, flip_only, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.flip(x, dims=[3]), atol=1e-5, rtol=0)
    nothing = AugmentSettings(hflip=0, rotate=0, translate=0, scale=0, brightness=0, contrast=0)
    assert not nothing.enabled


def test_normalise_resizes_and_standardises():
    x = as_unit_float(torch.full((2, 10, 10), 255, dtype=torch.uint8))
    out = normalise(x, 16)
    assert out.shape == (2, 1, 16, 16)
    torch.testing.assert_close(out, torch.full_like(out, (1 - 0.449) / 0.226))


def test_class_weights_balance_counts_and_skip_absent_classes():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)
    assert weights[2] == 0


def test_training_learns_and_is_deterministic():
    x, y = bright_vs_dark(96, seed=0)
    xv, yv = bright_vs_dark(48, seed=1)
    first = train_classifier(tiny_cnn(), x, y, xv, yv, 2, SETTINGS)
    model = tiny_cnn()
    torch.rand(1000)  # the loop must not depend on the global RNG state it is handed
    second = train_classifier(model, x, y, xv, yv, 2, SETTINGS)
    assert first.history["val_accuracy"].max() > 0.9, first.history
    np.testing.assert_allclose(first.history["val_loss"], second.history["val_loss"], rtol=1e-5)
    assert first.history.loc[first.history["best"], "epoch"].item() == first.best_epoch


def test_early_stopping_stops_after_patience(caplog):
    caplog.set_level("INFO", logger="sonoflow.train")
    x, y = bright_vs_dark(32, seed=0)
    xv = np.random.default_rng(5).integers(0, 255, (16, 24, 24), dtype=np.uint8)  # unlearnable validation
    yv = np.arange(16) % 2
    settings = TrainSettings(**{**SETTINGS.__dict__, "epochs": 30, "patience": 2, "lr": 0.05})
    result = train_classifier(tiny_cnn(), x, y, xv, yv, 2, settings)
    assert len(result.history) < 30
    assert len(result.history) == result.best_epoch + 2
    assert (f"stopped at epoch {len(result.history)} of 30; kept epoch {result.best_epoch}'s weights"
            in caplog.text), caplog.text


# Every piece of the recipe on (config.yaml's defaults, stronger).
RECIPE = TrainSettings(**{**SETTINGS.__dict__, "warmup_epochs": 2, "label_smoothing": 0.1, "ema": 0.9, "tta": ("hflip",),
                          "augment": AugmentSettings(rotate=5, translate=0.02, scale=0.05, speckle=0.2, gain=0.2,
                                                     tgc=0.2, depth_crop=0.2)})


@pytest.mark.parametrize("settings", [SETTINGS, RECIPE], ids=["plain", "recipe"])
def test_interrupted_training_resumes_and_matches_an_uninterrupted_run(tmp_path, monkeypatch, settings):
    import sonoflow.loop as loop_module

    SETTINGS = settings
    x, y = bright_vs_dark(64, seed=0)
    xv, yv = bright_vs_dark(32, seed=1)
    reference = train_classifier(tiny_cnn(), x, y, xv, yv, 2, SETTINGS)

    state = tmp_path / "resume.pt"
    save = loop_module._save_resume_state

    def save_then_die_after_epoch_3(path, payload):
        save(path, payload)
        if payload["epoch"] == 3:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(loop_module.ResumeSaver, "due", lambda self, epoch, epochs: True)  # every epoch, on any load
    monkeypatch.setattr(loop_module, "_save_resume_state", save_then_die_after_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(tiny_cnn(), x, y, xv, yv, 2, SETTINGS, resume_path=state)
    monkeypatch.setattr(loop_module, "_save_resume_state", save)

    resumed = train_classifier(tiny_cnn(), x, y, xv, yv, 2, SETTINGS, resume_path=state)
    assert resumed.resumed_from_epoch == 3
    assert len(resumed.history) == len(reference.history)
    np.testing.assert_allclose(resumed.history["val_loss"], reference.history["val_loss"], rtol=1e-5)

    # A state saved for other settings is never reused.
    other = TrainSettings(**{**SETTINGS.__dict__, "lr": 1e-2})
    assert train_classifier(tiny_cnn(), x, y, xv, yv, 2, other, resume_path=state).resumed_from_epoch == 0


KILL_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from test_train import tiny_cnn, bright_vs_dark, SETTINGS
from sonoflow.train import TrainSettings, train_classifier
x, y = bright_vs_dark(400, seed=0); xv, yv = bright_vs_dark(64, seed=1)
settings = TrainSettings(**{{**SETTINGS.__dict__, "epochs": 40, "patience": 100}})
result = train_classifier(tiny_cnn(), x, y, xv, yv, 2, settings, resume_path={state!r})
print("RESUMED_FROM", result.resumed_from_epoch, "EPOCHS", len(result.history))
"""


def test_killed_training_resumes_from_its_last_epoch(tmp_path):
    state = tmp_path / "resume.pt"
    script = KILL_SCRIPT.format(tests=os.path.dirname(__file__), state=str(state))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), "no epoch finished in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved_epoch = torch.load(state, weights_only=True)["epoch"]  # complete, and loadable safely
    # A kill during the next save may leave a hidden temporary file, never a second state.
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".resume.pt.")] == ["resume.pt"]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True).stdout
    assert [p.name for p in tmp_path.iterdir()] == ["resume.pt"], "the next save removed any leftover"
    resumed_from = int(out.split()[1])
    assert resumed_from >= saved_epoch >= 1, out
    assert "EPOCHS 40" in out


def test_recipe_learns_and_keeps_the_weights_it_validated():
    """Warm-up, label smoothing, EMA and ultrasound augmentation together still learn the toy task;
    the model returned is the one whose validation loss is the history's best (with EMA: the
    average, not the last raw weights), and EMA changes what is kept."""
    x, y = bright_vs_dark(96, seed=0)
    xv, yv = bright_vs_dark(48, seed=1)
    result = train_classifier(tiny_cnn(), x, y, xv, yv, 2, RECIPE)
    assert result.history["val_accuracy"].max() > 0.9, result.history
    weights = torch.tensor([1.0, 1.0])
    kept = validation_metrics(predict_proba(result.model, xv, RECIPE.input_size), yv, nn.NLLLoss(weight=weights))
    assert kept["val_loss"] == pytest.approx(result.best_val_loss, rel=1e-4)
    plain = train_classifier(tiny_cnn(), x, y, xv, yv, 2, TrainSettings(**{**RECIPE.__dict__, "ema": 0.0}))
    assert not np.allclose(plain.history["val_loss"], result.history["val_loss"])


def test_learning_rate_warms_up_then_follows_the_cosine():
    settings = TrainSettings(epochs=10, warmup_epochs=2, lr=1.0)
    factors = [lr_factor(epoch, settings) for epoch in range(10)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a > b for a, b in zip(factors[2:], factors[3:]))  # then only down
    # Without warm-up: exactly torch's CosineAnnealingLR.
    plain = TrainSettings(epochs=10, warmup_epochs=0, lr=1.0)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    expected = []
    for _ in range(10):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        cosine.step()
    assert [lr_factor(epoch, plain) for epoch in range(10)] == pytest.approx(expected, abs=1e-9)
    assert lr_factor(3, TrainSettings(epochs=10, warmup_epochs=0, scheduler="none")) == 1.0


def test_test_time_views_and_their_mean():
    x = torch.rand(3, 1, 25, 25)
    views = tta_views(x, ("hflip", "shift"))
    assert len(views) == 6 and all(view.shape == x.shape for view in views)
    torch.testing.assert_close(views[1], x.flip(-1))
    torch.testing.assert_close(views[2][..., 1:], x[..., :-1])  # moved right by 1 px (4% of 25)
    assert torch.all(views[2][..., 0] == 0)
    with pytest.raises(ValueError, match="rotate"):
        tta_views(x, ("rotate",))
    model = tiny_cnn()
    frames = bright_vs_dark(8)[0]
    mirrored = np.ascontiguousarray(frames[..., ::-1])
    expected = (predict_proba(model, frames, 24) + predict_proba(model, mirrored, 24)) / 2
    np.testing.assert_allclose(predict_proba(model, frames, 24, tta=("hflip",)), expected, atol=1e-6)


NO_GEOMETRY = dict(hflip=0, rotate=0, translate=0, scale=0, brightness=0, contrast=0)


def test_depth_crop_shows_the_top_of_the_image_larger_and_moves_masks_alike():
    rows = torch.linspace(0, 1, 40).view(1, 1, 40, 1).expand(2, 1, 40, 40).contiguous()
    masks = torch.zeros(2, 1, 40, 40)
    masks[:, :, 30:, :] = 1  # a "lesion" in the bottom quarter
    out, moved = augment_batch(rows, AugmentSettings(**NO_GEOMETRY, depth_crop=0.5), torch.Generator().manual_seed(0),
                               masks=masks)
    kept = out[:, 0, -1, 20]  # the bottom row now shows a shallower depth of the original
    assert torch.all(kept < 0.99) and torch.all(kept >= 0.49)
    assert torch.all(out[:, 0, 0, 20] < 0.03)  # the top (the probe) stays at the top
    # The image and its mask moved together: where the mask is, the image shows original rows >= 30.
    assert torch.all(out[moved.bool()] >= 29 / 39 - 0.03)
    assert moved.sum() < masks.sum()


def test_gain_tgc_and_speckle_change_intensity_not_geometry():
    x = torch.full((64, 1, 32, 32), 0.4)
    generator = torch.Generator().manual_seed(1)
    tgc = augment_batch(x, AugmentSettings(**NO_GEOMETRY, tgc=0.5), generator)
    ramp = tgc[:, 0, -1, :].mean(1) - tgc[:, 0, 0, :].mean(1)  # bottom minus top, per sample
    assert ramp.abs().max() > 0.1 and (ramp > 0).any() and (ramp < 0).any()
    gain = augment_batch(x, AugmentSettings(**NO_GEOMETRY, gain=0.5), generator)
    per_sample = gain.mean(dim=(1, 2, 3))
    assert per_sample.min() < 0.3 and per_sample.max() > 0.5
    torch.testing.assert_close(gain.std(dim=(1, 2, 3)), torch.zeros(64), atol=1e-5, rtol=0)  # uniform per image
    speckle = augment_batch(x, AugmentSettings(**NO_GEOMETRY, speckle=0.3), torch.Generator().manual_seed(2))
    again = augment_batch(x, AugmentSettings(**NO_GEOMETRY, speckle=0.3), torch.Generator().manual_seed(2))
    torch.testing.assert_close(speckle, again)
    assert speckle.std() > 0.02 and abs(float(speckle.mean()) - 0.4) < 0.02
    # Speckle cells are 2x2 pixels.
    torch.testing.assert_close(speckle[..., 0::2, 0::2], speckle[..., 1::2, 1::2])
    # Switched off, they draw nothing: the random stream (and so every result) is that of earlier versions.
    used, fresh = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    augment_batch(x, AugmentSettings(), used)
    torch.rand(7, len(x), generator=fresh)
    assert torch.equal(torch.rand(5, generator=used), torch.rand(5, generator=fresh))


def test_recipe_settings_come_from_the_config():
    settings = TrainSettings.from_config({"tta": ["hflip", "shift"], "ema": 0.99, "label_smoothing": 0.1,
                                          "warmup_epochs": 1, "augment": {"speckle": 0.1}}, model="efficientnet_lite0")
    assert settings.tta == ("hflip", "shift") and settings.ema == 0.99 and settings.augment.speckle == 0.1
    assert TrainSettings.from_config({}, model="resnet18").tta == ()


def test_run_fold_writes_to_the_paths_it_is_given(tmp_path, monkeypatch):
    import dataclasses

    import pandas as pd

    from sonoflow import models
    from sonoflow.dataset import FrameStore
    from sonoflow.train import FoldOutputs, run_fold

    monkeypatch.setattr(models, "build_model", lambda name, n_classes, **kwargs: tiny_cnn(n_classes))
    images, targets = bright_vs_dark(48)
    np.save(tmp_path / "frames.npy", images)
    labels = ["dark", "bright"]
    frames = pd.DataFrame({"shard": "00", "row": range(48), "patient_id": [f"P{i:02d}" for i in range(48)],
                           "item_id": [f"I{i:02d}" for i in range(48)], "frame_index": 0,
                           "label": [labels[t] for t in targets]})
    patients = frames["patient_id"].tolist()
    splits = {"test": patients[40:], "folds": [{"fold": 0, "train": patients[:32], "val": patients[32:40]}]}
    outputs = FoldOutputs(checkpoint=tmp_path / "a" / "model.pt", history=tmp_path / "b" / "epochs.csv",
                          predictions_val=tmp_path / "c" / "val.csv", predictions_test=tmp_path / "d" / "test.csv")
    run_fold(frames, splits, 0, FrameStore({"00": tmp_path / "frames.npy"}), dataclasses.replace(SETTINGS, epochs=2),
             labels, outputs)
    assert torch.load(outputs.checkpoint, weights_only=True)["labels"] == labels
    assert len(pd.read_csv(outputs.history)) == 2
    assert pd.read_csv(outputs.predictions_val)["patient_id"].tolist() == patients[32:40]
    assert pd.read_csv(outputs.predictions_test)["patient_id"].tolist() == patients[40:]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["epochs.csv", "frames.npy", "model.pt",
                                                                          "test.csv", "val.csv"]
    assert FoldOutputs.in_folder(tmp_path) == FoldOutputs(tmp_path / "best.pt", tmp_path / "history.csv",
                                                          tmp_path / "predictions_val.csv",
                                                          tmp_path / "predictions_test.csv")


@pytest.mark.parametrize("weighting", ["none", "balanced"])
def test_balance_items_gives_every_item_the_same_weight_in_the_loss(weighting):
    from sonoflow.train import item_weights

    rng = np.random.default_rng(0)
    frames, labels = rng.integers(0, 255, (4, 8, 8), dtype=np.uint8), np.array([0, 0, 0, 1])
    items = np.array(["clip", "clip", "clip", "image"])  # a clip of three frames, an image of one
    assert np.allclose(item_weights(items), [1 / 3, 1 / 3, 1 / 3, 1])
    # Class weights from the items: one of each class, so equal (the frames alone would give 2/3 and 2).
    assert torch.allclose(class_weights(labels, 2, item_weights(items)), torch.ones(2))
    settings = TrainSettings(model="linear", input_size=8, epochs=1, batch_size=4, lr=0.0, patience=5, device="cpu",
                             augment=AugmentSettings(hflip=0, rotate=0, translate=0, scale=0, brightness=0, contrast=0),
                             class_weighting=weighting, balance_items=True)

    def linear():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))

    result = train_classifier(linear(), frames, labels, frames, labels, 2, settings, train_items=items)
    with torch.no_grad():
        ce = nn.functional.cross_entropy(linear()(normalise(as_unit_float(torch.as_tensor(frames)), 8)),
                                         torch.as_tensor(labels), reduction="none").numpy()
    expected = (ce[:3].mean() + ce[3]) / 2  # each item once, its frames sharing its weight
    assert result.history.at[0, "train_loss"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="each training frame's item"):
        train_classifier(linear(), frames, labels, frames, labels, 2, settings)


def test_sampler_with_balance_items_draws_items_and_classes_evenly():
    from sonoflow.loop import EpochBatches
    from sonoflow.train import item_weights

    labels = np.array([0] * 9 + [0, 1])  # class 0: a clip of 9 frames and an image; class 1: one image
    items = np.array(["clip"] * 9 + ["image0", "image1"])
    draw = class_weights(labels, 2, item_weights(items)).numpy()[labels] * item_weights(items)
    batches = EpochBatches(len(labels), 11, torch.Generator().manual_seed(0), weights=draw)
    drawn = torch.cat([torch.cat(list(batches)) for _ in range(400)]).numpy()
    share = np.bincount(drawn, minlength=11) / len(drawn)
    # Half of the draws go to class 1's one image, a quarter each to class 0's clip and image.
    assert share[10] == pytest.approx(0.5, abs=0.02) and share[9] == pytest.approx(0.25, abs=0.02)
    assert share[:9].sum() == pytest.approx(0.25, abs=0.02)


def test_geometric_off_keeps_every_augmentation_but_rotation_shift_and_zoom():
    """train.geometric: false trains with augment minus its geometry (same random draws, so the same
    flips and intensity changes); auto must be resolved by the plan before a model trains."""
    augment = AugmentSettings(hflip=0.5, rotate=10, translate=0.05, scale=0.1, brightness=0.1, contrast=0.1,
                              speckle=0.15, gain=0.2, tgc=0.2, depth_crop=0.15)
    on = TrainSettings(augment=augment, geometric=True)
    off = TrainSettings(augment=augment, geometric=False)
    assert on.training_augment == augment
    assert off.training_augment == AugmentSettings(hflip=0.5, rotate=0, translate=0, scale=0, brightness=0.1,
                                                   contrast=0.1, speckle=0.15, gain=0.2, tgc=0.2, depth_crop=0.15)
    with pytest.raises(ValueError, match="geometric is 'auto'.*rule plan"):
        _ = TrainSettings(augment=augment, geometric="auto").training_augment
    # The geometry alone: off leaves each frame as it was or mirrored; on moves it.
    geometry = AugmentSettings(hflip=0.5, rotate=10, translate=0.1, scale=0.2, brightness=0, contrast=0)
    x = torch.rand(8, 1, 32, 32)
    kept = augment_batch(x, TrainSettings(augment=geometry, geometric=False).training_augment,
                         torch.Generator().manual_seed(3))
    for frame, out in zip(x, kept):
        assert torch.allclose(out, frame, atol=1e-5) or torch.allclose(out, frame.flip(-1), atol=1e-5)
    assert any(torch.allclose(out, frame.flip(-1), atol=1e-5) for frame, out in zip(x, kept))
    moved = augment_batch(x, TrainSettings(augment=geometry, geometric=True).training_augment,
                          torch.Generator().manual_seed(3))
    assert not any(torch.allclose(out, frame, atol=1e-3) or torch.allclose(out, frame.flip(-1), atol=1e-3)
                   for frame, out in zip(x, moved))
    assert TrainSettings().geometric is True  # tests and benchmarks that build settings keep the geometry
