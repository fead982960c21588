import cv2
import numpy as np
import pandas as pd
import pytest

from sonoflow.demo import make_demo
from sonoflow.frames import IngestSettings, ingest_item
from sonoflow.shortcuts import COMBINED, frame_features, shortcut_probe

LABELS = ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"]


@pytest.fixture(scope="module")
def demo_stills(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shortcuts")
    sheet = make_demo(folder, n_patients_per_class=8, images_per_patient=2, clips_per_patient=0, seed=11)
    return folder, sheet


def ingest_variant(folder, sheet, width_of, scanner_of=None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every demo still re-saved at width ``width_of(k, label)`` (height kept), then ingested:
    the frame table, frames and lesion masks the probe reads. With ``scanner_of(k, label)`` the
    stills are JPEGs whose EXIF names that maker."""
    from PIL import Image

    settings = IngestSettings(size=64, max_frames=1)
    rows, frames, masks = [], [], []
    for k, row in enumerate(sheet.itertuples()):
        image = cv2.imread(str(folder / row.path), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(folder / row.mask), cv2.IMREAD_GRAYSCALE)
        width = width_of(k, row.label)
        out, out_mask = folder / f"v_{k}.{'jpg' if scanner_of else 'png'}", folder / f"v_{k}_mask.png"
        resized = cv2.resize(image, (width, image.shape[0]), interpolation=cv2.INTER_AREA)
        if scanner_of:
            exif = Image.Exif()
            exif[0x010F], exif[0x0110] = scanner_of(k, row.label), "US-1"
            Image.fromarray(resized).save(out, quality=95, exif=exif)
        else:
            cv2.imwrite(str(out), resized)
        cv2.imwrite(str(out_mask), cv2.resize(mask, (width, image.shape[0]), interpolation=cv2.INTER_NEAREST))
        item = ingest_item(out, settings, [str(out_mask)])
        frames.append(item.frames[0])
        masks.append(item.masks[0])
        rows.append({"row": k, "item_id": row.item_id, "patient_id": row.patient_id, "label": row.label,
                     "has_mask": True, "source_height": item.source_shape[0], "source_width": item.source_shape[1],
                     "crop_y0": item.bbox[0], "crop_y1": item.bbox[1], "crop_x0": item.bbox[2], "crop_x1": item.bbox[3],
                     "colour": item.colour[0], "scanner": item.scanner})
    return pd.DataFrame(rows), np.stack(frames), np.stack(masks)


def probe(table, frames, masks):
    groups = frame_features(table, frames, masks, None)
    return shortcut_probe(table, groups, LABELS, folds=4, n_boot=300, seed=0).set_index("group")


def test_probe_scores_high_when_image_size_differs_by_class(demo_stills):
    folder, sheet = demo_stills
    result = probe(*ingest_variant(folder, sheet, lambda k, label: 256 + 48 * LABELS.index(label)))
    print(result[["frames", "patients", "auc", "ci_low", "ci_high", "top_features"]].to_string())
    assert result.loc["size", "auc"] > 0.9 and result.loc["size", "ci_low"] > 0.8
    assert "can be guessed from size" in result.loc["size", "warning"]
    assert result.loc["size", "top_features"].split(" ")[0] in ("source_width", "aspect", "megapixels")
    assert result.loc[COMBINED, "auc"] > 0.8


def test_probe_stays_near_chance_when_image_size_does_not_carry_the_label(demo_stills):
    folder, sheet = demo_stills
    rng = np.random.default_rng(1)
    widths = rng.integers(0, 4, len(sheet)) * 48 + 256  # the same sizes, drawn without regard to the class
    result = probe(*ingest_variant(folder, sheet, lambda k, label: int(widths[k])))
    print(result[["frames", "patients", "auc", "ci_low", "ci_high", "top_features"]].to_string())
    size = result.loc["size"]
    assert size["ci_low"] < 0.5 < size["ci_high"] and abs(size["auc"] - 0.5) < 0.15
    assert size["warning"] == ""


def test_probe_flags_a_scanner_named_in_the_headers_that_follows_the_class(demo_stills):
    folder, sheet = demo_stills
    maker = {"cyst": "Acme", "normal": "Acme", "hyperechoic_mass": "Zeta", "hypoechoic_mass": "Zeta"}
    table, frames, masks = ingest_variant(folder, sheet, lambda k, label: 256, lambda k, label: maker[label])
    assert set(table["scanner"]) == {"Acme US-1", "Zeta US-1"}
    groups = frame_features(table, frames, masks, None)
    assert list(groups["scanner"].columns) == ["scanner: Acme US-1", "scanner: Zeta US-1"]
    result = shortcut_probe(table, groups, ["cyst", "hyperechoic_mass", "hypoechoic_mass", "normal"], folds=4,
                            n_boot=300, seed=0).set_index("group")
    # Mass vs no mass is all the maker tells: one-vs-rest AUC 0.75 for each class, macro 0.75.
    assert result.loc["scanner", "auc"] > 0.7 and result.loc["scanner", "ci_low"] > 0.6, result
    # One maker for all (or none named): no scanner group at all.
    assert "scanner" not in frame_features(table.assign(scanner=""), frames, masks, None)


def test_vectorised_bootstrap_auc_equals_sklearn_resample_by_resample():
    """The probe's CI: every resample's AUC at once, equal to roc_auc_score with the resample's
    weights (ties in the scores, classes missing from some resamples, binary and macro one-vs-rest)."""
    from sonoflow.metrics import bootstrap_counts
    from sonoflow.shortcuts import _auc, auc_resamples

    rng = np.random.default_rng(1)
    for n_classes, n_patients in [(2, 30), (3, 6), (4, 40)]:
        patients = rng.integers(0, n_patients, 80)
        target = rng.integers(0, n_classes, n_patients)[patients]  # one label per patient, as the probe sees
        scores = np.round(rng.dirichlet(np.ones(n_classes), 80), 1) + 1e-9
        scores /= scores.sum(1, keepdims=True)
        weights = bootstrap_counts(n_patients, 200, 0)[:, patients].astype(float)
        expected = np.array([_auc(target, scores, n_classes, w) for w in weights])
        got = auc_resamples(target, scores, n_classes, weights)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], atol=1e-12)
        if n_classes == 3:
            assert np.isnan(expected).any(), "the small case has resamples without a class"
