import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from sonoflow.segment import (SegmentSettings, build_unet, evaluation_frames, hausdorff95, mask_scores, postprocess,
                              roi_box, roi_crops, save_segmenter, segment_frames, segmentation_summary,
                              segmentation_table, segmenter_partition)
from sonoflow.split import LeakageError, PatientPartition

SETTINGS = SegmentSettings(input_size=64, min_area=0.01)


def square(size=64, y=10, x=20, side=16):
    mask = np.zeros((size, size), np.uint8)
    mask[y : y + side, x : x + side] = 1
    return mask


def test_postprocess_fills_holes_and_keeps_the_largest_component():
    probability = np.zeros((64, 64), np.float32)
    probability[10:30, 10:30] = 0.9
    probability[15:20, 15:20] = 0.1  # a hole
    probability[40:50, 40:50] = 0.8  # a second, smaller lesion
    probability[60, 60] = 0.99  # speckle: below min_area
    largest = postprocess(probability, SETTINGS)
    assert largest[15:20, 15:20].all(), "holes are filled"
    assert largest.sum() == 400 and not largest[40:50, 40:50].any()
    both = postprocess(probability, SegmentSettings(input_size=64, min_area=0.01, keep="all"))
    assert both.sum() == 500 and both[60, 60] == 0
    assert postprocess(np.zeros((64, 64), np.float32), SETTINGS).sum() == 0


def test_roi_is_a_square_box_with_margin_and_the_full_frame_without_a_lesion():
    mask = square(y=10, x=20, side=16)
    assert roi_box(mask, margin=0.25) == (6, 30, 16, 40)  # 16 px + 4 px each side
    assert roi_box(np.zeros((64, 64), np.uint8), 0.25) is None
    frames = np.stack([(mask * 200).astype(np.uint8), np.full((64, 64), 7, np.uint8)])
    crops, table = roi_crops(frames, np.stack([mask, np.zeros_like(mask)]), 64, margin=0.25)
    assert table["has_roi"].tolist() == [True, False]
    # The lesion fills the middle of its crop (16 of 24 px -> 2/3 of the side), aligned.
    rows, cols = np.flatnonzero(crops[0].max(1) > 100), np.flatnonzero(crops[0].max(0) > 100)
    assert abs(rows[0] - 64 / 6) <= 1.5 and abs(rows[-1] - 64 * 5 / 6) <= 1.5
    assert abs(cols[0] - 64 / 6) <= 1.5 and abs(cols[-1] - 64 * 5 / 6) <= 1.5
    np.testing.assert_array_equal(crops[1], frames[1])  # no lesion: the full frame


def test_dice_iou_and_hd95_on_hand_worked_cases():
    a, b = square(x=20), square(x=28)  # 16x16 squares overlapping on 8 columns
    scores = mask_scores(np.stack([a, a, np.zeros_like(a)]), np.stack([b, a, np.zeros_like(a)]))
    np.testing.assert_allclose(scores["dice"], [2 * 128 / 512, 1, 1])
    np.testing.assert_allclose(scores["iou"], [128 / 384, 1, 1])
    # Borders 8 px apart horizontally: every directed distance is at most 8, and the 95th
    # percentile of each direction is 8 (most border pixels of the vertical edges are 8 away).
    assert scores["hd95"][0] == pytest.approx(8, abs=0.5)
    assert scores["hd95"][1] == 0 and scores["hd95"][2] == 0
    assert np.isnan(hausdorff95(a, np.zeros_like(a)))


def test_summary_per_class_and_over_lesion_frames():
    frames = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "item_id": ["a", "b", "c"], "frame_index": 0,
                           "label": ["cyst", "cyst", "normal"]})
    a, b, empty = square(x=20), square(x=28), np.zeros((64, 64), np.uint8)
    table = segmentation_table(frames, np.stack([a, a, empty]), np.stack([b, a, empty]))
    summary = segmentation_summary(table).set_index("label")
    assert summary.loc["cyst", "dice_mean"] == pytest.approx((0.5 + 1) / 2)
    assert summary.loc["normal", "dice_mean"] == 1
    assert summary.loc["all lesions", "frames"] == 2  # the normal frame shows no lesion


def frames_with_masks(patients, masked):
    rows = [{"patient_id": p, "item_id": f"{p}_i", "label": "a", "has_mask": p in masked, "shard": "00", "row": i}
            for i, p in enumerate(patients)]
    return pd.DataFrame(rows)


SPLITS = {"test": ["T1", "T2"], "folds": [{"fold": 0, "train": ["A", "B", "C", "D"], "val": ["E", "F"]},
                                         {"fold": 1, "train": ["C", "D", "E", "F"], "val": ["A", "B"]}]}


def test_segmenters_never_train_on_test_patients_and_fold_segmenters_not_on_their_val_patients():
    frames = frames_with_masks(["A", "B", "C", "D", "E", "F", "T1", "T2"], masked={"A", "B", "C", "D", "E", "F", "T1"})
    settings = SegmentSettings(val_fraction=0.2)
    everyone = segmenter_partition(frames, SPLITS, "all", settings)
    assert not (everyone.train | everyone.val) & {"T1", "T2"}
    assert len(everyone.val) == 2 and everyone.val <= {"A", "B", "C", "D", "E", "F"}  # ceil(0.2 * 6)
    fold = segmenter_partition(frames, SPLITS, "fold_1", settings)
    assert (fold.train | fold.val) <= {"C", "D", "E", "F"} and len(fold.val) == 1
    assert segmenter_partition(frames, SPLITS, "all", settings) == everyone, "deterministic"
    with pytest.raises(ValueError, match="unknown segmenter"):
        segmenter_partition(frames, SPLITS, "fold_7", settings)
    with pytest.raises(ValueError, match="at least 2"):
        segmenter_partition(frames_with_masks(["A", "B", "T1"], masked={"A"}), SPLITS, "all", settings)


def test_evaluation_prefers_test_patients_and_refuses_a_segmenter_trained_on_them(tmp_path):
    frames = frames_with_masks(["A", "B", "C", "T1", "T2"], masked={"A", "B", "C", "T1"})
    model = build_unet("resnet18", 1)
    honest = tmp_path / "honest.pt"
    save_segmenter(honest, model, SETTINGS, PatientPartition(train=["A", "B"], val=["C"]), best_epoch=1)
    chosen, part = evaluation_frames(frames, SPLITS, honest)
    assert part == "test" and chosen["patient_id"].tolist() == ["T1"]
    leaky = tmp_path / "leaky.pt"
    save_segmenter(leaky, model, SETTINGS, PatientPartition(train=["A", "T1"], val=["C"]), best_epoch=1)
    with pytest.raises(LeakageError):
        evaluation_frames(frames, SPLITS, leaky)


def test_pretrained_encoder_weights_load_from_a_local_file(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    unet = build_unet("resnet18", 1, weights=str(path))
    torch.testing.assert_close(unet.encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    # The gray stem is the RGB stem summed over its input channels.
    torch.testing.assert_close(unet.encoder.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    lite = build_unet("tu-efficientnet_lite0", 1, weights="efficientnet-lite0-package")
    assert lite.encoder.model.conv_stem.weight.shape[1] == 1
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_unet("resnet18", 1, weights=str(tmp_path / "missing.pth"))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="do not fit"):
        build_unet("resnet18", 1, weights=str(tmp_path / "other.pth"))


def test_segment_frames_gives_masks_and_rois_of_the_frame_size():
    torch.manual_seed(0)
    model = build_unet("resnet18", 1).eval()
    frames = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    with pytest.raises(ValueError, match="resolved"):
        segment_frames(model, frames, SETTINGS)  # roi_scale auto comes from the training masks first
    masks, rois, table = segment_frames(model, frames, SegmentSettings(input_size=64, min_area=0.01, roi_scale=0.5))
    assert masks.shape == rois.shape == frames.shape and masks.dtype == rois.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 1} and len(table) == 3
    assert ((table["roi_y1"] - table["roi_y0"]) == 32).all() and ((table["roi_x1"] - table["roi_x0"]) == 32).all()


def test_unet_segments_demo_lesions_on_held_out_patients(tmp_path):
    """The demo's stills at 64 px: trained on non-test patients only, Dice >= 0.8 on the test
    patients' lesions (0.85 when this test was written; 25 epochs of 8 batches, ~30 s)."""
    from sonoflow.demo import make_demo
    from sonoflow.frames import IngestSettings, ingest_item
    from sonoflow.segment import masked_frames, predict_masks, train_segmenter
    from sonoflow.split import SplitSettings, make_splits

    sheet = make_demo(tmp_path, n_patients_per_class=6, images_per_patient=2, clips_per_patient=0, seed=0)
    geometry = IngestSettings(size=64, max_frames=1)
    items = [ingest_item(tmp_path / row.path, geometry, [str(tmp_path / row.mask)]) for row in sheet.itertuples()]
    frames, masks = np.concatenate([i.frames for i in items]), np.concatenate([i.masks for i in items])
    table = sheet.assign(frame_index=0, has_mask=True)
    splits = make_splits(table, sorted(table["label"].unique()), SplitSettings(seed=42, test_fraction=0.25, folds=2))
    settings = SegmentSettings(input_size=64, epochs=25, steps_per_epoch=8, patience=100, batch_size=16)
    partition = segmenter_partition(table, splits, "all", settings)
    train, val = masked_frames(table, partition, "train"), masked_frames(table, partition, "val")
    test = table[table["patient_id"].isin(splits["test"])]
    assert not set(train["patient_id"]) & set(test["patient_id"])
    result = train_segmenter(frames[train.index], masks[train.index], frames[val.index], masks[val.index], settings)
    predicted = np.stack([postprocess(p, settings) for p in predict_masks(result.model, frames[test.index], settings)])
    summary = segmentation_summary(segmentation_table(test, predicted, masks[test.index])).set_index("label")
    print(summary.round(3).to_string())
    assert summary.loc["all lesions", "frames"] >= 8
    assert summary.loc["all lesions", "dice_mean"] >= 0.8


def test_fixed_roi_gives_every_frame_the_same_crop_size_lesion_or_not():
    from sonoflow.segment import fixed_box

    small, large = square(y=10, x=20, side=8), square(y=20, x=20, side=30)
    none = np.zeros((64, 64), np.uint8)
    probability = np.zeros((64, 64), np.float32)
    probability[50:56, 4:10] = 0.3  # below the threshold: no lesion, but the most probable place
    masks = np.stack([small, large, none])
    frames = np.stack([(m * 200).astype(np.uint8) for m in masks])
    probabilities = np.stack([small * 0.9, large * 0.9, probability]).astype(np.float32)
    crops, table = roi_crops(frames, masks, 64, margin=0.15, scale=0.5, probabilities=probabilities)
    sides = (table["roi_y1"] - table["roi_y0"]).tolist() + (table["roi_x1"] - table["roi_x0"]).tolist()
    assert sides == [32] * 6, "one geometry for every frame, whatever the lesion's size or absence"
    assert table["has_roi"].tolist() == [True, True, False]
    assert fixed_box(small, small, 0.5) == (0, 32, 8, 40)  # centred on the lesion (14, 24), shifted into the frame
    y0, y1, x0, x1 = table.iloc[2][["roi_y0", "roi_y1", "roi_x0", "roi_x1"]]
    assert (y0, y1, x0, x1) == (32, 64, 0, 32), "no lesion: the crop sits on the most probable place"
    assert crops[0].max() > 100 and crops[1].max() > 100


def test_planned_roi_scale_holds_most_training_lesions_and_is_resolved_before_cropping():
    from sonoflow.segment import planned_roi_scale, with_roi_scale

    masks = np.stack([square(side=s) for s in (8, 10, 12, 16, 20)] + [np.zeros((64, 64), np.uint8)])
    scale = planned_roi_scale(masks, margin=0.25)
    assert scale == pytest.approx(np.quantile([8, 10, 12, 16, 20], 0.9) / 64 * 1.5, abs=1e-3)
    assert planned_roi_scale(np.zeros((2, 64, 64), np.uint8), 0.25) == 1.0
    assert planned_roi_scale(np.stack([square(side=2)]), 0.1) == 0.25  # never below a quarter of the frame
    resolved = with_roi_scale(SegmentSettings(input_size=64, roi_scale="auto", margin=0.25), masks)
    assert resolved.roi_scale == scale
    with pytest.raises(ValueError, match="roi_scale"):
        SegmentSettings(roi_scale=1.5)
    with pytest.raises(ValueError, match="roi must be"):
        SegmentSettings(roi="box")


def test_per_fold_segmenters_auto_follows_the_classifier_inputs():
    from sonoflow.plan import per_fold_segmenters

    assert per_fold_segmenters("auto", ["full"]) is False
    assert per_fold_segmenters("auto", ["full", "roi"]) is True
    assert per_fold_segmenters("auto", ["both"]) is True
    assert per_fold_segmenters(False, ["roi"]) is False and per_fold_segmenters(True, ["full"]) is True


def test_auto_values_are_the_demos_on_the_demo_and_the_datas_otherwise():
    from sonoflow.plan import apply_plan

    def config():
        return {"ingest": {"size": "auto"}, "train": {"input_size": 160},
                "segment": {"input_size": "auto", "encoder": "auto", "weights": "auto", "decoder_channels": "auto",
                            "epochs": "auto", "steps_per_epoch": "auto", "patience": 3, "min_delta": "auto"}}

    demo, data = config(), config()
    plan = apply_plan(demo, demo=True)
    assert (demo["ingest"]["size"], demo["segment"]["input_size"], demo["train"]["input_size"]) == (128, 96, 160)
    assert (demo["segment"]["encoder"], demo["segment"]["weights"]) == ("resnet18", None)
    apply_plan(data, demo=False)
    assert (data["ingest"]["size"], data["segment"]["input_size"], data["train"]["input_size"]) == (256, 256, 160)
    assert (data["segment"]["encoder"], data["segment"]["weights"]) == ("tu-efficientnet_lite0", "imagenet")
    assert data["segment"]["decoder_channels"] == [256, 128, 64, 32, 16] and data["segment"]["patience"] == 3
    # The classifier's schedule: longer on real data than on the demo.
    assert (data["train"]["epochs"], data["train"]["patience"]) == (15, 5)
    assert (demo["train"]["epochs"], demo["train"]["patience"]) == (12, 4)
    # Batches: 16 on the demo (its ~115 training frames a fold make 7 steps an epoch, not 3-4), 32 on data.
    assert (demo["train"]["batch_size"], data["train"]["batch_size"]) == (16, 32)
    pinned = config()
    pinned["train"]["batch_size"] = 8
    assert {entry["key"]: entry for entry in apply_plan(pinned, demo=True)}["train.batch_size"]["planned"] is False
    assert pinned["train"]["batch_size"] == 8
    planned = {entry["key"]: entry["planned"] for entry in plan}
    assert planned["ingest.size"] and not planned["train.input_size"] and not planned["segment.patience"]
    assert all(value != "auto" for section in demo.values() for value in section.values())


def test_a_lighter_unet_keeps_its_shape_through_save_and_load(tmp_path):
    from sonoflow.segment import load_segmenter, predict_masks

    light = SegmentSettings(input_size=64, encoder_depth=4, decoder_channels=[64, 32, 16, 8], device="cpu")
    assert light.decoder_channels == (64, 32, 16, 8) and light.architecture == {"depth": 4, "decoder_channels": (64, 32, 16, 8)}
    torch.manual_seed(0)
    model = build_unet("resnet18", 1, **light.architecture).eval()
    default = build_unet("resnet18", 1)
    def decoder_size(unet):
        return sum(p.numel() for p in unet.decoder.parameters())

    assert decoder_size(model) < 0.2 * decoder_size(default)
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)
    frames = np.random.default_rng(0).integers(0, 255, (2, 64, 64), dtype=np.uint8)
    path = tmp_path / "light.pt"
    save_segmenter(path, model, light, PatientPartition(train=["A"], val=["B"]), best_epoch=1)
    loaded, settings, _ = load_segmenter(path)
    assert settings.architecture == light.architecture
    np.testing.assert_allclose(predict_masks(loaded, frames, settings), predict_masks(model, frames, light), atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"encoder_depth": 4}, "one entry per encoder stage"),
    ({"encoder_depth": 6, "decoder_channels": [1] * 6}, "encoder_depth must be 3, 4 or 5"),
    ({"input_size": 48, "encoder_depth": 5}, "multiple of 32"),
    ({"min_delta": -0.1}, "min_delta"),
])
def test_unet_shape_settings_are_checked(bad, message):
    with pytest.raises(ValueError, match=message):
        SegmentSettings(**bad)
    # 48 px is fine for a U-Net of depth 4 (a multiple of 16).
    SegmentSettings(input_size=48, encoder_depth=4, decoder_channels=[32, 16, 8, 4])


def test_early_stopping_with_min_delta_stops_on_a_creeping_loss(monkeypatch):
    """Validation loss still falling, but by less than min_delta: the best epoch stays where the
    last real improvement was, and training stops `patience` epochs later."""
    import sonoflow.segment as segment

    losses = iter([1.0, 0.5, 0.49, 0.48, 0.47, 0.46, 0.45, 0.44, 0.43, 0.42])
    real_loss = segment.DiceBCELoss.forward

    def scripted(self, logits, target):
        loss = real_loss(self, logits, target)
        return loss if logits.requires_grad else torch.tensor(next(losses))  # validation: scripted

    monkeypatch.setattr(segment.DiceBCELoss, "forward", scripted)
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 32), dtype=np.uint8)
    masks = (frames > 128).astype(np.uint8)
    settings = SegmentSettings(input_size=32, epochs=10, batch_size=4, steps_per_epoch=1, patience=2, min_delta=0.05,
                               encoder_depth=3, decoder_channels=[16, 8, 4], device="cpu")
    result = segment.train_segmenter(frames[:4], masks[:4], frames[4:], masks[4:], settings)
    assert result.best_epoch == 2
    assert result.history["epoch"].tolist() == [1, 2, 3, 4]
    assert (result.history["images_per_s"] > 0).all()


def test_interrupted_segmenter_training_resumes_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    """As the classifier's (the loop is shared): killed after epoch 3, the rerun continues from
    the saved state and ends with the history and weights of a run that was never interrupted."""
    import sonoflow.loop as loop
    from sonoflow.segment import predict_masks, train_segmenter
    from sonoflow.train import AugmentSettings

    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 32), dtype=np.uint8)
    masks = (frames > 128).astype(np.uint8)
    settings = SegmentSettings(input_size=32, epochs=5, batch_size=3, steps_per_epoch=3, patience=10,
                               encoder_depth=3, decoder_channels=[16, 8, 4], device="cpu",
                               augment=AugmentSettings(rotate=5, translate=0.02, scale=0.05, speckle=0.2))
    data = (frames[:6], masks[:6], frames[6:], masks[6:])
    reference = train_segmenter(*data, settings)

    state = tmp_path / "all.resume.pt"
    save = loop._save_resume_state

    def save_then_die_after_epoch_3(path, payload):
        save(path, payload)
        if payload["epoch"] == 3:
            raise KeyboardInterrupt("simulated kill")

    # Every epoch saved, however long a save takes: on a loaded machine the U-Net's state can take
    # over the saver's quarter second, and the skipped epoch 3 would never "die".
    monkeypatch.setattr(loop.ResumeSaver, "due", lambda self, epoch, epochs: True)
    monkeypatch.setattr(loop, "_save_resume_state", save_then_die_after_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_segmenter(*data, settings, resume_path=state)
    monkeypatch.setattr(loop, "_save_resume_state", save)

    resumed = train_segmenter(*data, settings, resume_path=state)
    assert resumed.resumed_from_epoch == 3 and reference.resumed_from_epoch == 0
    assert len(resumed.history) == len(reference.history) == 5
    for column in ("train_loss", "val_loss", "val_dice", "lr", "best"):
        np.testing.assert_allclose(resumed.history[column], reference.history[column], rtol=1e-5, err_msg=column)
    assert resumed.best_epoch == reference.best_epoch
    np.testing.assert_allclose(predict_masks(resumed.model, frames, settings), predict_masks(reference.model, frames, settings),
                               atol=1e-5)

    # A state saved for other settings or data is never reused.
    assert train_segmenter(frames[:5], masks[:5], *data[2:], settings, resume_path=state).resumed_from_epoch == 0
    state.unlink()
    train_segmenter(*data, settings, resume_path=state)
    other = SegmentSettings(**{**settings.__dict__, "lr": 1e-2})
    assert train_segmenter(*data, other, resume_path=state).resumed_from_epoch == 0


def test_roi_crop_geometry_cannot_tell_lesion_from_normal(tmp_path):
    """Issue 13's shortcut. On a demo variant whose lesions are invisible (only their masks say
    where they are), whatever tells lesion from normal in a crop is the crop's geometry. A probe
    (sonoflow.shortcuts, patient-grouped folds) reads it off `fit` crops (the lesion's box; the
    full frame without one) almost perfectly; off `fixed` crops it stays at chance, as on full
    frames. The U-Net stands in as it behaves: lesions found where the masks are, and on normal
    frames a low, uninformative probability whose peak may sit anywhere in the fan; crops at that
    peak (no prior) still give the class away, by their place."""
    from scipy import ndimage

    from sonoflow.demo import make_demo
    from sonoflow.frames import IngestSettings, ingest_item
    from sonoflow.segment import lesion_prior, planned_roi_scale
    from sonoflow.shortcuts import probe_auc

    sheet = make_demo(tmp_path, n_patients_per_class=16, images_per_patient=2, clips_per_patient=0, seed=5,
                      lesion_contrast=0.0)
    settings = IngestSettings(size=64, max_frames=1)
    items = [ingest_item(tmp_path / row.path, settings, [str(tmp_path / row.mask)]) for row in sheet.itertuples()]
    frames, masks = np.stack([item.frames[0] for item in items]), np.stack([item.masks[0] for item in items])
    assert masks[(sheet["label"] != "normal").to_numpy()].any(axis=(1, 2)).all()
    rng = np.random.default_rng(0)
    probabilities = np.stack([ndimage.gaussian_filter(m.astype(np.float32), 2) * 0.9 if m.any()
                              else rng.uniform(0, 0.2, m.shape).astype(np.float32) * (f > 0)
                              for m, f in zip(masks, frames)])
    target, patients = (sheet["label"] != "normal").to_numpy(int), sheet["patient_id"].to_numpy()
    scale, prior = planned_roi_scale(masks, 0.15), lesion_prior(masks)

    def probe(images):
        pooled = np.stack([cv2.resize(x.astype(np.float32), (6, 6), interpolation=cv2.INTER_AREA).ravel() for x in images])
        features = pd.DataFrame(np.column_stack([pooled, (images.reshape(len(images), -1) == 0).mean(1)]))
        return probe_auc(features, target, patients, 2, 4, 300, 0)[:3]

    full = probe(frames)
    fit = probe(roi_crops(frames, masks, 64, 0.15)[0])
    at_peak = probe(roi_crops(frames, masks, 64, 0.15, scale, probabilities)[0])
    fixed = probe(roi_crops(frames, masks, 64, 0.15, scale, probabilities, prior)[0])
    print(f"lesion vs normal AUC (95% CI): full {full}, fit {fit}, fixed at the peak {at_peak}, fixed {fixed}")
    assert full[1] < 0.5 < full[2] or full[0] < 0.6  # nothing to see in the frames themselves
    assert fit[0] > 0.95 and fit[1] > 0.9  # the zoom gives the class away
    assert at_peak[1] > 0.55  # so does the place of a crop at a stray probability peak
    assert fixed[1] < 0.5 < fixed[2] and abs(fixed[0] - 0.5) < 0.12  # one geometry for every class
    # The same frame gets the same crop (the draw is seeded by the frame's probability map).
    again = roi_crops(frames, masks, 64, 0.15, scale, probabilities, prior)[1]
    assert again.equals(roi_crops(frames, masks, 64, 0.15, scale, probabilities, prior)[1])
