"""The training loop shared by the classifier and the U-Net (sonoflow.loop): its batch sampler
draws exactly the index sequences the two samplers it replaced drew (so a seed's results do not
change), device choice names the caller's setting, and the resume saver."""

import numpy as np
import pytest
import torch

from sonoflow.loop import EpochBatches, ResumeSaver, batches_on, make_optimizer, pick_device


def drawn(batches) -> list[list[int]]:
    return [index.tolist() for index in batches]


# The sequences below were drawn by sonoflow.train.EpochBatches and sonoflow.segment.epoch_batches
# before they became one sampler.
def test_classifier_batches_are_those_of_earlier_versions():
    labels = np.array([0] * 7 + [1] * 3)
    plain = EpochBatches(len(labels), 4, torch.Generator().manual_seed(0))
    assert drawn(plain) == [[4, 1, 7, 5], [3, 9, 0, 8], [6, 2]]
    assert drawn(plain) == [[3, 9, 4, 2], [7, 8, 6, 0], [5, 1]]  # the next epoch, same generator
    balanced = EpochBatches(len(labels), 4, torch.Generator().manual_seed(1), labels=labels)
    assert drawn(balanced) == [[0, 3, 3, 2], [7, 1, 6, 8], [7, 6]]
    assert drawn(balanced) == [[7, 4, 8, 5], [1, 1, 7, 2], [7, 8]]
    assert drawn(EpochBatches(9, 4, torch.Generator().manual_seed(2))) == [[0, 8, 6, 3], [7, 1, 2, 5]]
    assert drawn(EpochBatches(1, 4, torch.Generator().manual_seed(0))) == [[0]]


def test_segmenter_batches_are_those_of_earlier_versions():
    generator = torch.Generator().manual_seed(3)
    steps = EpochBatches(5, 2, generator, steps=7)
    assert drawn(steps) == [[1, 0], [3, 4], [0, 1], [2, 4], [1, 4], [3, 0], [0, 2]]
    assert drawn(steps) == [[0, 3], [4, 1], [1, 2], [0, 3], [2, 3], [4, 1], [4, 3]]
    assert drawn(EpochBatches(9, 4, torch.Generator().manual_seed(4))) == [[4, 7, 1, 8], [3, 5, 0, 2]]
    assert drawn(EpochBatches(10, 3, torch.Generator().manual_seed(5), steps=2)) == [[1, 4, 9], [6, 3, 5]]
    assert drawn(EpochBatches(1, 3, torch.Generator().manual_seed(0), steps=3)) == [[0], [0], [0]]


def test_epoch_batches_cover_everything_or_balance_classes():
    labels = np.array([0] * 90 + [1] * 10)
    plain = torch.cat(list(EpochBatches(100, 16, torch.Generator().manual_seed(0))))
    assert sorted(plain.tolist()) == list(range(100))
    drawn_ = torch.cat([torch.cat(list(EpochBatches(100, 16, torch.Generator().manual_seed(s), labels=labels)))
                        for s in range(5)])
    share = (torch.as_tensor(labels)[drawn_] == 1).float().mean()
    assert 0.35 < share < 0.65, share
    # Balanced draws repeat too, to a number of steps.
    assert len(drawn(EpochBatches(100, 16, torch.Generator().manual_seed(0), labels=labels, steps=20))) == 20


def test_epoch_batches_refuse_batches_of_one():
    """A last batch of one is dropped, so batch_size 1 would never train (or, repeated to a
    number of steps, never end)."""
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        EpochBatches(10, 1, torch.Generator(), steps=4)
    with pytest.raises(ValueError, match="3 labels for 4 samples"):
        EpochBatches(4, 2, torch.Generator(), labels=np.array([0, 1, 0]))


def test_batches_reach_the_device_in_the_order_drawn():
    batches = EpochBatches(10, 4, torch.Generator().manual_seed(0))
    again = EpochBatches(10, 4, torch.Generator().manual_seed(0))
    moved = batches_on(list(batches), torch.device("cpu"))
    assert [b.tolist() for b in moved] == [b.tolist() for b in again.on(torch.device("cpu"))]
    assert sorted(torch.cat(list(moved)).tolist()) == list(range(10))


def test_pick_device_names_the_setting_it_came_from(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="^train.device is 'cuda'"):
        pick_device("cuda")
    with pytest.raises(RuntimeError, match="^segment.device is 'cuda'"):
        pick_device("cuda", "segment.device")


def test_resume_saver_skips_epochs_only_while_saving_is_dear(tmp_path):
    saver = ResumeSaver(share=0.1, min_seconds=0.25)
    assert saver.due(1, 10)  # never saved: save
    saver.save(tmp_path / "state.pt", {"epoch": 1})
    assert torch.load(tmp_path / "state.pt", weights_only=True) == {"epoch": 1}
    saver.save_seconds = 0.2  # a cheap save: after every epoch
    assert saver.due(2, 10)
    saver.save_seconds = 1.0  # a save that takes 1 s is worth it once per 10 s of training
    assert not saver.due(2, 10)
    saver.last_saved -= 10.5
    assert saver.due(3, 10)
    saver.save_seconds = 0.0
    assert not saver.due(10, 10)  # the last epoch never: the job's outputs come next, and the state goes
    assert not ResumeSaver().due(1, 1)


def scripted_fit(rows, monitor, patience=10, caplog=None):
    """``fit`` on a one-parameter model whose validation gives the scripted ``rows`` epoch by
    epoch; the parameter records the epoch, so the kept weights tell which epoch was kept."""
    import logging

    from sonoflow.loop import fit

    model = torch.nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    epoch = {"n": 0}

    def step(index):
        return (model.weight * 0).sum(), {}

    def validate(scored):
        epoch["n"] += 1
        with torch.no_grad():
            scored.weight.fill_(epoch["n"])
        return dict(rows[epoch["n"] - 1])

    result = fit(model, optimizer, scheduler, torch.Generator().manual_seed(0), EpochBatches(4, 2, torch.Generator()),
                 step, validate, epochs=len(rows), patience=patience, device=torch.device("cpu"),
                 logger=logging.getLogger("test"), describe=lambda row: "", monitor=monitor)
    return result, int(model.weight.item())


def test_the_kept_epoch_is_the_best_by_the_monitored_metric(caplog):
    # Near-uniform first-epoch predictions: the lowest loss, the worst ranking (DDTI, BrEaST).
    rows = [{"val_loss": 0.66, "val_auc": 0.60}, {"val_loss": 0.70, "val_auc": 0.80}, {"val_loss": 0.72, "val_auc": 0.75}]
    by_loss, kept = scripted_fit(rows, "val_loss")
    assert by_loss.best_epoch == 1 and kept == 1
    by_auc, kept = scripted_fit(rows, "val_auc")
    assert by_auc.best_epoch == 2 and kept == 2 and by_auc.best_loss == 0.70
    assert list(by_auc.history["best"]) == [False, True, False]
    # Patience counts epochs without a better monitored value.
    stopped, _ = scripted_fit(rows + [{"val_loss": 0.5, "val_auc": 0.7}] * 3, "val_auc", patience=2)
    assert len(stopped.history) == 4 and stopped.best_epoch == 2
    # A saturated AUC: the tie goes to the lower loss, and resets patience.
    saturated = [{"val_loss": 0.5, "val_auc": 1.0}, {"val_loss": 0.3, "val_auc": 1.0}, {"val_loss": 0.4, "val_auc": 1.0},
                 {"val_loss": 0.2, "val_auc": 1.0}]
    assert scripted_fit(saturated, "val_auc", patience=1)[0].best_epoch == 2
    assert scripted_fit(saturated, "val_auc", patience=2)[0].best_epoch == 4
    # No AUC on the validation frames (a class missing): the loss picks, with a warning.
    caplog.set_level("WARNING")
    fallback, kept = scripted_fit([{"val_loss": value} for value in (0.7, 0.6, 0.65)], "val_auc")
    assert fallback.best_epoch == 2 and kept == 2
    assert "val_auc not available" in caplog.text


def test_an_unknown_monitor_is_refused():
    from sonoflow.train import TrainSettings, train_classifier

    frames = np.zeros((4, 16, 16), np.uint8)
    with pytest.raises(ValueError, match="unknown train.monitor 'f1'"):
        train_classifier(torch.nn.Linear(1, 2), frames, np.array([0, 1, 0, 1]), frames, np.array([0, 1, 0, 1]), 2,
                         TrainSettings(monitor="f1", epochs=1))


@pytest.mark.parametrize("name, options", [("adamw", {}), ("sgd", {"momentum": 0.9})])
def test_the_optimiser_is_fused_on_cpu_and_updates_as_the_default_one(name, options):
    """Every loop's optimiser uses torch's fused kernel on CPU; its steps are those of the default
    (per-tensor) implementation of the same optimiser, to float rounding."""

    def trained(make):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        optimizer = make(model.parameters())
        x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
        for _ in range(5):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return optimizer, torch.cat([p.detach().flatten() for p in model.parameters()])

    reference = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    fused, ours = trained(lambda p: make_optimizer(name, p, lr=0.01, weight_decay=1e-2, **options))
    _, theirs = trained(lambda p: reference(p, lr=0.01, weight_decay=1e-2, **options))
    assert type(fused) is reference and fused.param_groups[0]["fused"] is True
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours, trained(lambda p: reference(p, lr=0.0, weight_decay=0.0))[1])  # it did train


def test_an_unknown_optimiser_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; use adamw or sgd"):
        make_optimizer("adam", [torch.nn.Parameter(torch.zeros(2))], lr=0.1, weight_decay=0.0)
