"""Stage 7, cam: Grad-CAM family heatmaps (pytorch-grad-cam), what their overlays show, and
whether they point at the lesion (the overlays are drawn by sonoflow.figures.cam_overlay_figures).

For every classifier fold, CAMs are computed on the images it is scored on (the held-out test
patients, or its own validation fold when there is no test set), batched, for the true class
(explanation quality) and for every class of the few images shown as overlays (so that the fold
ensemble's call can be drawn). Quality per image: the share of CAM energy inside the lesion
against the lesion's area share (chance), the pointing-game hit (the CAM's peak inside the
lesion) against the same chance, and pytorch-grad-cam's confidence change and ROAD scores.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from sonoflow.settings import Settings

# torch is imported where a model runs, not here: rule cam_report (ensemble maps, figures, the
# quality table) reads only arrays and tables, and importing torch was half of its time.
if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("sonoflow.cam")

KINDS = ("correct", "wrong", "random")


def cam_methods() -> dict[str, type]:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM

    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "eigencam": EigenCAM,
            "layercam": LayerCAM}


METHOD_NAMES = ("gradcam", "gradcam++", "scorecam", "eigencam", "layercam")


@dataclass(frozen=True)
class CamSettings(Settings):
    SECTION = "cam"
    NOT_SETTINGS = frozenset({"enabled", "threads"})  # threads: the job's, not a setting of its maps

    methods: tuple[str, ...] = ("gradcam",)
    per_kind: int = 2  # overlays per class: this many most confident correct, most confident wrong, random
    max_images: int = 300  # per fold, a class-stratified sample for the quality table
    road_images: int = 24  # per fold and method, ROAD and confidence change (slow: sparse in-painting)
    road_percentiles: tuple[int, ...] = (20, 40, 60, 80)
    pointing_tolerance: int = 0  # px: a peak this close to the lesion counts as a hit
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHOD_NAMES))
        if unknown or not self.methods:
            raise ValueError(f"unknown CAM method(s) {unknown}; choose from {', '.join(METHOD_NAMES)}")


# --- Model and CAMs --------------------------------------------------------------------------------


def load_classifier(path, device: str = "auto", setting: str = "cam.device") -> tuple[nn.Module, dict]:
    """A trained fold's classifier in eval mode, and its checkpoint metadata; ``device`` comes
    from the config key ``setting`` (named when CUDA is asked for and absent)."""
    from sonoflow.checkpoints import load_classifier as load_classifier_checkpoint
    from sonoflow.loop import pick_device
    from sonoflow.models import build_model

    checkpoint = load_classifier_checkpoint(path)
    settings = checkpoint["settings"]
    model = build_model(checkpoint["model_name"], len(checkpoint["labels"]), in_channels=checkpoint["in_channels"],
                        input_size=settings["input_size"])
    model.load_state_dict(checkpoint["model"])
    return model.to(pick_device(device, setting)).eval(), checkpoint


def model_input(frames: np.ndarray, input_size: int, device: torch.device) -> torch.Tensor:
    """uint8 frames (N, H, W) as the classifier's normalised input (N, 1, S, S)."""
    import torch

    from sonoflow.train import as_unit_float, normalise

    return normalise(as_unit_float(torch.as_tensor(np.ascontiguousarray(frames)).to(device)), input_size)


@contextmanager
def graph_from(model: nn.Module, layers: Sequence[nn.Module]) -> Iterator[None]:
    """Autograd from the target layers' outputs on, and nothing else, for the duration.

    The Grad-CAM family needs the gradient of a class score with respect to the target layer's
    activations only. A plain backward pass also computes every weight's gradient (for VGG16's
    classifier, hundreds of MB per call) and every gradient below the target layer, which is most
    of the network: about 3x the work on CPU for the same maps (benchmarks/bench_cam.py). So the
    parameters are frozen for the call, and each target layer's output becomes a leaf the graph
    starts from (a copy, so that an in-place op after the layer, such as DenseNet's ReLU, acts on a
    non-leaf). The maps are the same
    (tests/unit/test_models.py compares them with pytorch-grad-cam's own pass on every registry
    model). Where gradients reach the layer anyway (an input that requires them), nothing changes.
    """
    import torch

    def start_graph(module: nn.Module, inputs, output):
        if not isinstance(output, torch.Tensor) or output.requires_grad or not torch.is_grad_enabled():
            return None
        return output.detach().requires_grad_(True).clone()

    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    # Registered before the CAM object's own hooks, so that those see the output the graph starts from.
    handles = [layer.register_forward_hook(start_graph) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for parameter in trainable:
            parameter.requires_grad_(True)


def compute_cams(model: nn.Module, model_name: str, x: torch.Tensor, classes: Sequence[int], method: str,
                 batch_size: int = 16) -> np.ndarray:
    """CAMs (N, S, S) in [0, 1] at the input resolution, for class ``classes[i]`` of image i."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from sonoflow.models import cam_target

    layers, reshape = cam_target(model, model_name)
    out = np.zeros((len(x), *x.shape[-2:]), np.float32)
    # One CAM object for all batches: its hooks are registered once and removed on exit.
    with graph_from(model, layers), cam_methods()[method](model=model, target_layers=layers,
                                                           reshape_transform=reshape) as cam:
        if method == "scorecam":
            cam.batch_size = batch_size
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            targets = [ClassifierOutputTarget(int(c)) for c in classes[start : start + len(batch)]]
            out[start : start + len(batch)] = np.nan_to_num(cam(input_tensor=batch, targets=targets))
    return out


def to_frame_size(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if cams.shape[-2:] == size:
        return cams
    return np.stack([cv2.resize(c, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for c in cams])


# --- Which images -------------------------------------------------------------------------------------


def choose_examples(predictions: pd.DataFrame, labels: Sequence[str], per_kind: int, seed: int = 0) -> pd.DataFrame:
    """Per true class: the ``per_kind`` most confident correct calls, most confident wrong calls
    and random others, each from a different patient (frames of one clip, and items of one
    patient, look alike: a class with one patient shows one panel, not three of the same
    image); column ``kind`` says which. ``predictions``: frame predictions."""
    rng = np.random.default_rng(seed)
    probs = predictions[[f"prob_{name}" for name in labels]].to_numpy()
    table = predictions.assign(predicted=[labels[i] for i in probs.argmax(1)], confidence=probs.max(1))
    chosen = []
    for label in labels:
        of_class = table[table["label"] == label].sort_values("confidence", ascending=False, kind="stable")
        key = "patient_id" if "patient_id" in of_class else "item_id"
        shown: set = set()
        for kind in KINDS:
            if kind == "random":
                pool = of_class.iloc[rng.permutation(len(of_class))]
            else:
                pool = of_class[(of_class["predicted"] == label) == (kind == "correct")]
            part = pool[~pool[key].isin(shown)].drop_duplicates(key).head(per_kind)
            shown |= set(part[key])
            chosen.append(part.assign(kind=kind))
    return pd.concat(chosen) if chosen else table.iloc[:0].assign(kind="")


def quality_sample(frames: pd.DataFrame, max_images: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_images`` frames, the same share from every class."""
    if len(frames) <= max_images:
        return frames
    share = max_images / len(frames)
    # Per class by index (groupby.apply would drop the label column in pandas >= 3).
    chosen = [part.sample(max(1, round(share * len(part))), random_state=seed)
              for _, part in frames.groupby("label", sort=True)]
    return pd.concat(chosen)


# --- Explanation quality ---------------------------------------------------------------------------------


def lesion_scores(cams: np.ndarray, masks: np.ndarray, tolerance: int = 0) -> pd.DataFrame:
    """Per image with a lesion: CAM energy inside it, its area share (the chance level of both the
    energy share and the pointing game), and the pointing-game hit; NaN where no lesion."""
    rows = []
    kernel = np.ones((2 * tolerance + 1,) * 2, np.uint8) if tolerance else None
    for cam, mask in zip(cams, masks.astype(bool)):
        if not mask.any():
            rows.append({"energy_inside": np.nan, "lesion_share": 0.0, "pointing_hit": np.nan})
            continue
        total = float(cam.sum())
        peak = np.unravel_index(int(np.argmax(cam)), cam.shape)
        near = cv2.dilate(mask.view(np.uint8), kernel).astype(bool) if kernel is not None else mask
        rows.append({"energy_inside": float(cam[mask].sum()) / total if total > 0 else np.nan,
                     "lesion_share": float(mask.mean()), "pointing_hit": float(near[peak])})
    return pd.DataFrame(rows)


def perturbation_scores(model: nn.Module, x: torch.Tensor, cams: np.ndarray, classes: Sequence[int],
                        percentiles: Sequence[int], batch_size: int = 16, seed: int = 0) -> pd.DataFrame:
    """pytorch-grad-cam's confidence change (input times CAM; near 0 or above: the CAM keeps what
    the model needs) and ROAD combined (higher: removing the CAM's pixels first hurts more than
    removing the least relevant first), on the softmax probability of the class.

    ROAD fills the removed pixels with noise from torch's global generator: it is drawn here from
    ``seed`` (in a forked generator, so the caller's stream is left as it was), and the same job
    gives the same scores every time it runs."""
    import torch
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    change, road = CamMultImageConfidenceChange(), ROADCombined(percentiles=list(percentiles))
    rows = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.random.default_generator.manual_seed(seed)  # the CPU generator only: CUDA's are not forked
        for start in range(0, len(x), batch_size):
            batch, maps = x[start : start + batch_size], cams[start : start + batch_size]
            targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes[start : start + len(batch)]]
            rows += [{"confidence_change": float(a), "road": float(b)} for a, b in
                     zip(change(batch, maps, targets, model).ravel(), road(batch, maps, targets, model).ravel())]
    return pd.DataFrame(rows, columns=["confidence_change", "road"])


SCORE_COLUMNS = ("energy_inside", "lesion_share", "pointing_hit", "confidence_change", "road")


def read_quality(path) -> pd.DataFrame:
    """A per-image quality table: ids as strings (a patient may be called 'NA'), scores as numbers."""
    table = pd.read_csv(path, dtype={"shard": str, "patient_id": str, "item_id": str, "label": str}, keep_default_na=False)
    for column in SCORE_COLUMNS:
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def quality_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per method and class (and over all lesion images): means, with energy inside the lesion
    and pointing-game hit rate each against the chance level (the mean lesion share)."""
    lesions = per_image[per_image["lesion_share"] > 0]
    groups = [(keys, part) for keys, part in lesions.groupby(["method", "label"])]
    groups += [((method, "all lesions"), part) for method, part in lesions.groupby("method")]
    rows = []
    for (method, label), part in groups:
        chance = part["lesion_share"].mean()
        row = {"method": method, "label": label, "images": len(part), "patients": part["patient_id"].nunique(),
               # all-zero maps (no positive evidence anywhere): no energy share to score
               "blank_cams": int(part["energy_inside"].isna().sum()),
               "energy_inside": part["energy_inside"].mean(), "pointing_hit_rate": part["pointing_hit"].mean(),
               "chance": chance, "energy_vs_chance": part["energy_inside"].mean() / chance,
               "pointing_vs_chance": part["pointing_hit"].mean() / chance}
        for column in ("confidence_change", "road"):
            values = part[column].dropna() if column in part else pd.Series(dtype=float)
            row[column] = values.mean() if len(values) else np.nan
            row[f"{column}_images"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows)


# --- One fold, and the run's report --------------------------------------------------------------------


def cam_fold(model: nn.Module, checkpoint: Mapping, part: pd.DataFrame, examples: pd.DataFrame, store, lesions,
             settings: CamSettings) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """CAMs of one fold's classifier on ``part`` (its scored frames, with predictions).

    Returns the per-image quality rows (true-class CAMs of a class-stratified sample) and, per
    method, CAMs for every class of the ``examples`` in ``part`` (E, K, H, W) and true-class
    CAMs of the sample (N, H, W), float16, for the fold ensemble.
    """
    labels = checkpoint["labels"]
    size = checkpoint["settings"]["input_size"]
    device = next(model.parameters()).device
    sample = quality_sample(part, settings.max_images, settings.seed).sort_values(["shard", "row"])
    index = {name: i for i, name in enumerate(labels)}
    truth = sample["label"].map(index).to_numpy()
    images = store.gather(sample)
    masks = lesions.gather(sample) if lesions is not None else np.zeros_like(images)
    x = model_input(images, size, device)
    shown = examples.merge(part[["shard", "row"]], on=["shard", "row"])
    x_shown = model_input(store.gather(shown), size, device) if len(shown) else None
    rows, arrays = [], {}
    frame_size = images.shape[-2:]
    for method in settings.methods:
        at_input = compute_cams(model, checkpoint["model_name"], x, truth, method, settings.batch_size)
        cams = to_frame_size(at_input, frame_size)
        scores = lesion_scores(cams, masks, settings.pointing_tolerance)
        road = np.flatnonzero(masks.reshape(len(masks), -1).any(1))[: settings.road_images]
        if len(road):
            perturbed = perturbation_scores(model, x[road], at_input[road], truth[road], settings.road_percentiles,
                                            settings.batch_size, settings.seed)
            scores.loc[road, ["confidence_change", "road"]] = perturbed.to_numpy()
        rows.append(pd.concat([sample[["shard", "row", "patient_id", "item_id", "frame_index", "label"]]
                               .reset_index(drop=True), scores], axis=1).assign(method=method))
        arrays[f"{method}/sample"] = cams.astype(np.float16)
        if x_shown is not None:
            per_class = [to_frame_size(compute_cams(model, checkpoint["model_name"], x_shown, [k] * len(shown), method,
                                                    settings.batch_size), frame_size) for k in range(len(labels))]
            arrays[f"{method}/examples"] = np.stack(per_class, axis=1).astype(np.float16)
    # The pixels and lesions as this fold saw them: with per-fold segmenters ROI crops differ.
    arrays["sample_keys"] = sample[["shard", "row"]].to_numpy().astype(str)
    arrays["sample_lesions"] = masks.astype(np.uint8)
    arrays["example_keys"] = shown[["shard", "row"]].to_numpy().astype(str)
    arrays["example_frames"] = store.gather(shown) if len(shown) else np.zeros((0, *frame_size), np.uint8)
    arrays["example_lesions"] = (lesions.gather(shown) if lesions is not None and len(shown)
                                 else np.zeros((len(shown), *frame_size), np.uint8))
    return pd.concat(rows, ignore_index=True), arrays


def same_geometry(folds: Sequence[Mapping[str, np.ndarray]]) -> bool:
    """Whether every fold scored the same frames with the same pixels (false for ROI input with
    one segmenter per fold): only then is the mean of their CAMs a fold-ensemble CAM."""
    first = folds[0]
    return all(np.array_equal(fold["sample_keys"], first["sample_keys"]) and
               np.array_equal(fold["example_keys"], first["example_keys"]) and
               np.array_equal(fold["example_frames"], first["example_frames"]) for fold in folds[1:])


def ensemble_quality(folds: Sequence[Mapping[str, np.ndarray]], sample: pd.DataFrame, method: str,
                     tolerance: int) -> pd.DataFrame:
    """Lesion scores of the fold ensemble's CAM (the mean of the folds' true-class CAMs) on the
    test sample, which every fold scored (same frames, same order, same geometry)."""
    mean = np.mean([fold[f"{method}/sample"].astype(np.float32) for fold in folds], axis=0)
    scores = lesion_scores(mean, folds[0]["sample_lesions"], tolerance)
    return pd.concat([sample.reset_index(drop=True), scores], axis=1).assign(method=method)


def lesion_sources(examples: pd.DataFrame, frames: pd.DataFrame | None) -> list[str]:
    """Per example, where its lesion mask comes from: 'truth' (its item has a mask) or 'unet'
    (the segmentation stage's prediction). Without the frame table every mask counts as truth."""
    if frames is None or examples.empty:
        return ["truth"] * len(examples)
    keys = frames.assign(shard=frames["shard"].astype(str), row=frames["row"].astype(int))
    has_mask = keys.set_index(["shard", "row"])["has_mask"].astype(str).str.lower().eq("true")
    index = pd.MultiIndex.from_arrays([examples["shard"].astype(str), examples["row"].astype(int)])
    return ["truth" if known else "unet" for known in has_mask.reindex(index, fill_value=False)]


@dataclass
class CamOverlays:
    """What a run's overlay figures show (sonoflow.figures.cam_overlay_figures): the chosen
    ``examples`` (choose_examples), their frames and lesion masks as the fold that drew them saw
    them, where each mask came from (lesion_sources), per method the CAM of the predicted class
    (E, H, W), and whether those are the fold ensemble's (mean over folds) or each frame's fold's."""
    examples: pd.DataFrame
    images: np.ndarray
    lesions: np.ndarray
    sources: list[str]
    cams: dict[str, np.ndarray]
    ensemble: bool


def cam_report(folds: Sequence[Mapping[str, np.ndarray]], fold_quality: Sequence[pd.DataFrame], predictions: pd.DataFrame,
               part: str, labels: Sequence[str], settings: CamSettings,
               frames: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, CamOverlays]:
    """The run's explanation-quality table, per image and summarised, and what its overlay
    figures show (one per method).

    Quality per fold; for the test part also of the fold ensemble's CAM (mean over folds), when
    the folds share one geometry; for the cv part the folds' rows pooled. Overlays show the CAM
    for the predicted class: the ensemble's mean CAM (test), or that of the one fold that
    predicted the frame (cv, or folds of different geometry: the first fold's).
    """
    per_image = pd.concat([q.assign(scope=f"fold {k}") for k, q in enumerate(fold_quality)], ignore_index=True)
    ensemble = part == "test" and same_geometry(folds)
    if part == "test" and not ensemble:
        log.warning("folds saw the test frames in different geometry (one segmenter per fold): no ensemble CAM")
    if ensemble:
        sample = per_image.loc[per_image["scope"] == "fold 0",
                               ["shard", "row", "patient_id", "item_id", "frame_index", "label"]].drop_duplicates()
        scored = [ensemble_quality(folds, sample, method, settings.pointing_tolerance) for method in settings.methods]
        per_image = pd.concat([per_image, *[e.assign(scope="fold ensemble") for e in scored]], ignore_index=True)
    elif part == "cv":
        per_image = pd.concat([per_image, per_image.assign(scope="pooled folds")], ignore_index=True)
    summary = pd.concat([quality_summary(rows).assign(scope=scope) for scope, rows in per_image.groupby("scope")],
                        ignore_index=True)

    examples = choose_examples(predictions, labels, settings.per_kind, settings.seed).reset_index(drop=True)
    predicted = examples["predicted"].map({name: i for i, name in enumerate(labels)}).to_numpy()
    holders = [{key: i for i, key in enumerate(map(tuple, fold["example_keys"]))} for fold in folds]
    size = next((fold["example_frames"].shape[1:] for fold in folds if len(fold["example_frames"])), (1, 1))
    images = np.zeros((len(examples), *size), np.uint8)
    lesions = np.zeros((len(examples), *size), np.uint8)
    cams = {method: np.zeros((len(examples), *size), np.float32) for method in settings.methods}
    for i, key in enumerate(map(tuple, examples[["shard", "row"]].to_numpy().astype(str))):
        owners = [(fold, holder[key]) for fold, holder in zip(folds, holders) if key in holder]
        owners = owners if ensemble else owners[:1]
        for method in settings.methods:
            cams[method][i] = np.mean([fold[f"{method}/examples"][j, predicted[i]].astype(np.float32)
                                       for fold, j in owners], axis=0)
        images[i], lesions[i] = owners[0][0]["example_frames"][owners[0][1]], owners[0][0]["example_lesions"][owners[0][1]]
    return summary, per_image, CamOverlays(examples, images, lesions, lesion_sources(examples, frames), cams, ensemble)
