"""Checkpoints: plain types only, loaded with weights_only=True on every path, and a malicious
pickle refused with the file named, before it can run anything."""

import os
import subprocess
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sonoflow import checkpoints
from sonoflow.checkpoints import CheckpointError, UnsafeCheckpointError, to_plain
from sonoflow.segment import PatientPartition, SegmentSettings, build_unet, evaluation_frames, load_segmenter, \
    save_segmenter
from sonoflow.train import TrainSettings, save_checkpoint, train_classifier

REPO = Path(__file__).resolve().parents[2]


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def tiny_classifier_state() -> dict:
    from sonoflow.models import build_model

    return build_model("resnet18", 2, in_channels=1, input_size=32).state_dict()


def evil_checkpoint(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A checkpoint of the given kind, complete and well formed, plus one poisoned entry."""
    marker = tmp_path / f"PWNED_{kind}"
    path = tmp_path / f"{kind}.pt"
    if kind in ("classifier", "init_from"):
        payload = {"model": tiny_classifier_state(), "model_name": "resnet18", "labels": ["a", "b"],
                   "settings": {"input_size": 32}, "in_channels": 1, "best_epoch": 1}
    elif kind in ("segmenter", "segmenter_patients"):
        payload = {"model": build_unet("resnet18").state_dict(), "settings": {}, "best_epoch": 1,
                   "patients": {"train": ["A"], "val": ["B"]}}
    elif kind == "resume":
        payload = {"fingerprint": "x", "epoch": 1}
    else:  # pretrained weights: a bare state dict
        payload = dict(tiny_classifier_state())
    payload["x"] = Evil(marker)
    torch.save(payload, path)
    return path, marker


def load_through(kind: str, path: Path):
    """Each way sonoflow reads a checkpoint handed to it."""
    from sonoflow.cam import load_classifier
    from sonoflow.models import build_model, load_checkpoint_into

    if kind == "init_from":
        load_checkpoint_into(build_model("resnet18", 2, in_channels=1, input_size=32), str(path))
    elif kind == "classifier":  # cam and predict
        load_classifier(path, "cpu")
    elif kind == "segmenter":
        load_segmenter(path, "cpu")
    elif kind == "segmenter_patients":
        frames = pd.DataFrame({"patient_id": ["T"], "has_mask": [True]})
        evaluation_frames(frames, {"test": ["T"], "folds": []}, path)
    elif kind == "resume":
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 255, (8, 16, 16), dtype=np.uint8), np.arange(8) % 2
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        train_classifier(model, x, y, x, y, 2, TrainSettings(model="tiny", input_size=16, epochs=1, device="cpu"),
                         resume_path=path)
    elif kind == "pretrained":
        build_model("resnet18", 2, in_channels=1, weights=str(path), input_size=32)
    elif kind == "segmenter_encoder":
        build_unet("resnet18", 1, weights=str(path))


KINDS = ["init_from", "classifier", "segmenter", "segmenter_patients", "resume", "pretrained", "segmenter_encoder"]


@pytest.mark.parametrize("kind", KINDS)
def test_malicious_checkpoint_is_refused_on_every_loading_path(tmp_path, kind):
    path, marker = evil_checkpoint(tmp_path, "pretrained" if kind == "segmenter_encoder" else kind)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_through(kind, path)
    message = str(error.value)
    assert str(path) in message and "refusing to load" in message and "posix.system" in message, message
    assert not marker.exists(), "the payload ran"


def test_the_malicious_payload_is_live(tmp_path):
    """The control: unpickled the classic way, the same file does run its command."""
    path, marker = evil_checkpoint(tmp_path, "classifier")
    torch.load(path, weights_only=False)  # what sonoflow used to do
    assert marker.exists()


def test_no_weights_only_false_and_every_torch_load_in_one_module():
    found = subprocess.run(["grep", "-rn", "--include=*.py", "weights_only=False", str(REPO / "sonoflow")],
                           capture_output=True, text=True).stdout
    assert found == ""
    loads = subprocess.run(["grep", "-rln", "--include=*.py", "torch.load(", str(REPO / "sonoflow")],
                           capture_output=True, text=True).stdout.split()
    assert [Path(p).name for p in loads] == ["checkpoints.py"]


def test_every_saved_kind_loads_back_with_weights_only(tmp_path):
    model = nn.Linear(3, 2)
    settings = TrainSettings(model="resnet18", input_size=32)
    save_checkpoint(tmp_path / "best.pt", model, model_name="resnet18", labels=("a", "b"), settings=settings,
                    in_channels=1, best_epoch=np.int64(3))
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["best_epoch"] == 3 and type(best["best_epoch"]) is int and best["labels"] == ["a", "b"]
    assert best["settings"]["input_size"] == 32 and torch.equal(best["model"]["weight"], model.weight)

    unet = build_unet("resnet18")
    save_segmenter(tmp_path / "unet.pt", unet, SegmentSettings(), PatientPartition(train=["A"], val=["B"]), best_epoch=2)
    loaded, segment_settings, patients = load_segmenter(tmp_path / "unet.pt", "cpu")
    assert patients == {"train": ["A"], "val": ["B"]} and segment_settings.encoder == SegmentSettings().encoder
    assert set(torch.load(tmp_path / "unet.pt", weights_only=True)) == set(checkpoints.SEGMENTER_KEYS)


def test_resume_state_of_a_real_run_is_plain_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (16, 16, 16), dtype=np.uint8), np.arange(16) % 2
    settings = TrainSettings(model="tiny", input_size=16, epochs=3, batch_size=8, device="cpu")

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    state = tmp_path / "fold_0.resume.pt"
    train_classifier(model(), x, y, x, y, 2, settings, resume_path=state)
    # a finished run leaves its state in place here (the job deletes it); the last epoch is never saved
    saved = checkpoints.load_resume_state(state)  # weights_only=True
    assert saved["epoch"] == 2 and all(type(v) in (int, float, bool) for row in saved["history"] for v in row.values()
                                       if not isinstance(v, str))
    resumed = train_classifier(model(), x, y, x, y, 2, settings, resume_path=state)
    assert resumed.resumed_from_epoch == 2


def test_to_plain_converts_numpy_and_paths_and_refuses_objects(tmp_path):
    plain = to_plain({"a": np.float32(0.5), "b": np.arange(3), "c": Path("/x"), "d": (1, [np.int64(2)]),
                      "e": OrderedDict(w=torch.ones(1, requires_grad=True))})
    assert plain["a"] == 0.5 and type(plain["a"]) is float and torch.equal(plain["b"], torch.arange(3))
    assert plain["c"] == "/x" and plain["d"] == (1, [2]) and not plain["e"]["w"].requires_grad
    with pytest.raises(TypeError, match=r"best.pt\['settings'\] is a sonoflow.stage_settings.TrainSettings"):
        to_plain({"settings": TrainSettings()}, "best.pt")
    with pytest.raises(TypeError, match="DataFrame"):
        checkpoints.save(tmp_path / "t.pt", {"table": pd.DataFrame({"a": [1]})})
    assert not (tmp_path / "t.pt").exists() and not list(tmp_path.iterdir())


def test_missing_truncated_and_foreign_checkpoints_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"classifier checkpoint not found: .*gone.pt"):
        checkpoints.load_classifier(tmp_path / "gone.pt")
    checkpoints.save(tmp_path / "full.pt", {"model": {"w": torch.ones(100)}})
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cannot read classifier checkpoint .*cut.pt"):
        checkpoints.load_classifier(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match=r"full.pt is not a sonoflow classifier checkpoint: it lacks model_name"):
        checkpoints.load_classifier(tmp_path / "full.pt")
