"""The ingested data set: per-shard frame tables combined into one, and frames gathered from the
per-shard memory-mapped arrays (one channel, or full frame and ROI stacked for input `both`)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sonoflow.dataset import (FrameStore, StackedStore, classifier_store, combine_frame_tables, read_frame_table,
                              shard_name)
from sonoflow.frames import FRAME_COLUMNS
from sonoflow.models import build_model
from sonoflow.train import TrainSettings, predict_proba, train_classifier

HEIGHT, WIDTH = 6, 5


def frames_of(shard: int, n: int, offset: int = 0) -> np.ndarray:
    """n frames, each filled with one value that says where it came from: 10 * shard + row (+ offset)."""
    return np.stack([np.full((HEIGHT, WIDTH), 10 * shard + row + offset, np.uint8) for row in range(n)])


def write_shards(root: Path, sizes: dict[int, int], name: str = "frames.npy", offset: int = 0) -> list[Path]:
    """results/ingest/shard_NN/<name> for each shard, as ingest writes them."""
    paths = []
    for shard, n in sizes.items():
        folder = root / f"shard_{shard:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / name, frames_of(shard, n, offset))
        paths.append(folder / name)
    return paths


def write_table(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{**dict.fromkeys(FRAME_COLUMNS, ""), **row} for row in rows], columns=FRAME_COLUMNS).to_csv(path, index=False)
    return path


def test_shard_name_from_a_file_or_its_folder():
    assert shard_name("results/ingest/shard_03/frames.csv") == "03"
    assert shard_name(Path("results/ingest/shard_12")) == "12"
    assert shard_name("x/shard_00/roi.npy") == "00"
    with pytest.raises(ValueError, match="not a shard folder"):
        shard_name("results/ingest/frames.csv")


def test_read_frame_table_keeps_ids_as_text(tmp_path):
    path = write_table(tmp_path / "shard_00" / "frames.csv",
                       [{"row": 0, "item_id": "007", "patient_id": "0012", "label": "1", "split": "", "frame_index": 0,
                         "scanner": "", "has_mask": True}])
    table = read_frame_table(path)
    row = table.iloc[0]
    # Leading zeros survive, numeric-looking labels stay labels, empty cells are "" (not NaN).
    assert (row["item_id"], row["patient_id"], row["label"], row["split"], row["scanner"]) == ("007", "0012", "1", "", "")
    assert all(pd.api.types.is_string_dtype(table[column]) for column in ("item_id", "patient_id", "label", "split", "scanner"))
    assert table["row"].dtype.kind == "i" and table["frame_index"].dtype.kind == "i"


def test_combine_frame_tables_adds_the_shard_and_sorts_by_patient_item_frame(tmp_path):
    second = write_table(tmp_path / "shard_01" / "frames.csv",
                         [{"row": 0, "item_id": "b", "patient_id": "P1", "frame_index": 1},
                          {"row": 1, "item_id": "b", "patient_id": "P1", "frame_index": 0}])
    first = write_table(tmp_path / "shard_00" / "frames.csv",
                        [{"row": 0, "item_id": "c", "patient_id": "P2", "frame_index": 0},
                         {"row": 1, "item_id": "a", "patient_id": "P1", "frame_index": 0}])
    table = combine_frame_tables([second, first])
    assert list(table.columns[:2]) == ["shard", "row"]
    assert table[["shard", "row", "patient_id", "item_id", "frame_index"]].values.tolist() == [
        ["00", 1, "P1", "a", 0], ["01", 1, "P1", "b", 0], ["01", 0, "P1", "b", 1], ["00", 0, "P2", "c", 0]]
    assert list(table.index) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="no frame tables"):
        combine_frame_tables([])


def test_gather_reads_across_shards_in_the_requested_order(tmp_path):
    store = FrameStore.from_paths(write_shards(tmp_path, {0: 4, 1: 3, 2: 2}))
    assert store.channels == 1
    # Shards interleaved and rows unsorted within a shard: read sorted, scattered back in this order.
    wanted = pd.DataFrame({"shard": ["01", "00", "02", "00", "01", "00"], "row": [2, 3, 0, 0, 0, 3]})
    out = store.gather(wanted)
    assert out.shape == (6, HEIGHT, WIDTH) and out.dtype == np.uint8
    assert out[:, 0, 0].tolist() == [12, 3, 20, 0, 10, 3]
    assert (out == out[:, :1, :1]).all()  # whole frames, not pieces of several
    # A table with another index (a slice of a bigger one) gathers the same.
    assert np.array_equal(store.gather(wanted.set_axis([7, 3, 9, 1, 5, 0])), out)


def test_gather_refuses_an_empty_selection_and_an_unknown_shard(tmp_path):
    store = FrameStore.from_paths(write_shards(tmp_path, {0: 2}))
    with pytest.raises(ValueError, match="no frames selected"):
        store.gather(pd.DataFrame({"shard": [], "row": []}))
    with pytest.raises(KeyError, match="no array for shard '05'"):
        store.gather(pd.DataFrame({"shard": ["00", "05"], "row": [0, 0]}))


def test_stacked_store_gives_one_channel_per_view(tmp_path):
    full = FrameStore.from_paths(write_shards(tmp_path, {0: 3, 1: 2}))
    roi = FrameStore.from_paths(write_shards(tmp_path, {0: 3, 1: 2}, name="roi.npy", offset=100))
    stacked = StackedStore([full, roi])
    assert stacked.channels == 2
    out = stacked.gather(pd.DataFrame({"shard": ["01", "00", "00"], "row": [1, 2, 0]}))
    assert out.shape == (3, 2, HEIGHT, WIDTH) and out.dtype == np.uint8
    assert out[:, 0, 0, 0].tolist() == [11, 2, 0]  # channel 0: the full frame
    assert out[:, 1, 0, 0].tolist() == [111, 102, 100]  # channel 1: its ROI crop


def test_classifier_store_for_each_input_mode(tmp_path):
    arrays = {"full": write_shards(tmp_path, {0: 2, 1: 2}), "roi": write_shards(tmp_path, {0: 2, 1: 2}, "roi.npy", 100)}
    frames = pd.DataFrame({"shard": ["01", "00"], "row": [0, 1]})
    full, roi, both = (classifier_store(mode, arrays) for mode in ("full", "roi", "both"))
    assert isinstance(full, FrameStore) and isinstance(roi, FrameStore) and isinstance(both, StackedStore)
    assert (full.channels, roi.channels, both.channels) == (1, 1, 2)
    assert full.gather(frames)[:, 0, 0].tolist() == [10, 1]
    assert roi.gather(frames)[:, 0, 0].tolist() == [110, 101]
    assert both.gather(frames)[:, :, 0, 0].tolist() == [[10, 110], [1, 101]]
    # A mode reads only the arrays it needs.
    assert classifier_store("full", {"full": arrays["full"]}).channels == 1
    with pytest.raises(ValueError, match="unknown classifier input 'rgb'; choose one of full, roi, both"):
        classifier_store("rgb", arrays)


@pytest.fixture
def one_torch_thread():
    """A model this small gains nothing from more threads, and on a busy machine two threads wait
    for each other (2 s with one thread, over 20 s with two, next to another job)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_classifier_trains_and_predicts_on_stacked_full_and_roi_channels(tmp_path, one_torch_thread):
    """Input `both` end to end in the library: frames gathered as (N, 2, H, W) uint8 train a
    two-channel backbone, which predicts one probability per class for each frame."""
    rng = np.random.default_rng(0)
    n, size = 24, 32
    labels = np.arange(n) % 2
    full = rng.integers(0, 90, (n, size, size), dtype=np.uint8)
    roi = rng.integers(0, 90, (n, size, size), dtype=np.uint8)
    roi[labels == 1, 8:24, 8:24] = 230  # class 1: a bright lesion in the ROI channel
    for name, frames in (("frames.npy", full), ("roi.npy", roi)):
        (tmp_path / "shard_00").mkdir(exist_ok=True)
        np.save(tmp_path / "shard_00" / name, frames)
    store = classifier_store("both", {"full": [tmp_path / "shard_00" / "frames.npy"],
                                      "roi": [tmp_path / "shard_00" / "roi.npy"]})
    table = pd.DataFrame({"shard": "00", "row": np.arange(n)})
    x = store.gather(table)
    assert x.shape == (n, 2, size, size) and x.dtype == np.uint8

    torch.manual_seed(0)
    model = build_model("resnet18", 2, in_channels=store.channels, weights=None, input_size=size)
    settings = TrainSettings(model="resnet18", input="both", input_size=size, epochs=2, batch_size=8, lr=1e-3,
                             patience=5, seed=0, device="cpu")
    result = train_classifier(model, x[:16], labels[:16], x[16:], labels[16:], 2, settings)
    assert len(result.history) == 2 and np.isfinite(result.best_val_loss)
    probs = predict_proba(result.model, x, size)
    assert probs.shape == (n, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
