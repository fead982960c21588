"""benchmarks/epoch_curves.py: each rule for picking the kept epoch, scored on known probabilities."""

import pandas as pd

from conftest import load_benchmark


# p(b) for (part, epoch) -> (class a, class b): epoch 1 near uniform and ranked backwards (the
# lowest loss, AUC 0); epoch 2 ranks validation right but over-confidently (AUC 1, a high loss);
# epoch 3 ranks test right.
P_B = {("val", 1): (0.51, 0.49), ("val", 2): (0.9, 0.99), ("val", 3): (0.9, 0.8),
       ("test", 1): (0.51, 0.49), ("test", 2): (0.9, 0.8), ("test", 3): (0.9, 0.99)}


def probs_table():
    """Two folds, three epochs, four patients per part and fold (P_B)."""
    rows = []
    for (part, epoch), (p_a, p_b) in P_B.items():
        for fold in (0, 1):
            for i, label in enumerate(["a", "b", "a", "b"]):
                value = p_b if label == "b" else p_a
                rows.append({"patient_id": f"{part}{fold}_{i}", "label": label, "p_a": 1 - value, "p_b": value,
                             "fold": fold, "epoch": epoch, "part": part})
    return pd.DataFrame(rows)


def test_each_rule_picks_its_epoch_and_is_scored(capsys):
    curves = load_benchmark("epoch_curves")
    curves.report(probs_table(), ["a", "b"], "b")
    out = capsys.readouterr().out
    assert "lowest validation loss: epochs [1, 1], pooled 0.000, test 0.000" in out
    assert "highest validation AUC: epochs [2, 2], pooled 1.000, test 0.000" in out
    assert "last epoch: epochs [3, 3], pooled 0.000, test 1.000" in out
    assert [line.split() for line in out.splitlines()[1:4]] == [["1", "0.000", "0.000"], ["2", "1.000", "0.000"],
                                                               ["3", "0.000", "1.000"]]


def test_loop_rules_replay_the_training_loops_early_stopping(capsys):
    """The train.monitor rules read the loop's own histories (its class-weighted val_loss and frame
    val_auc) and stop as sonoflow.loop.fit does, so they can keep other epochs than the rules on
    the saved probabilities."""
    curves = load_benchmark("epoch_curves")
    # Fold 0: the weighted loss is lowest at epoch 1 and the AUC best at epoch 3 (tied at 4, lower loss there);
    # fold 1: the loss improves at 2, then stalls; with patience 1 the loop stops before epoch 3's better AUC.
    histories = {0: pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.60, 0.70, 0.65], "val_auc": [0.5, 0.6, 0.9]}),
                 1: pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.70, 0.60, 0.80], "val_auc": [0.6, 0.5, 0.9]})}
    assert curves.loop_pick(histories[0], "loss", 5) == 1 and curves.loop_pick(histories[0], "auc", 5) == 3
    assert curves.loop_pick(histories[1], "auc", 1) == 1, "stopped after epoch 2 brought no better AUC"
    assert curves.loop_pick(histories[1], "loss", 1) == 2
    tied = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.5, 0.4, 0.3], "val_auc": [1.0, 1.0, 1.0]})
    assert curves.loop_pick(tied, "auc", 5) == 3, "a saturated AUC goes to the lower loss"
    curves.report(probs_table(), ["a", "b"], "b", histories, patience=5)
    out = capsys.readouterr().out
    assert "train.monitor loss, patience 5: epochs [1, 2]" in out
    assert "train.monitor auc, patience 5: epochs [3, 3], pooled 0.000, test 1.000" in out


def test_macro_auc_with_labels_in_the_splits_order_and_per_item(monkeypatch):
    """Without --positive the AUC is sklearn's macro one-vs-rest, which wants sorted labels: the
    splits' own order (regular before bacterial, as in lung POCUS) must give the same figure as
    the sorted one. With --unit item, a patient's two items (of two labels) are scored apart."""
    curves = load_benchmark("epoch_curves")
    labels = ["regular", "bacterial", "covid"]
    # (patient, item, label, p_regular, p_bacterial, p_covid): each item ranked right for its own
    # class; p0 has a regular and a bacterial item, whose mean looks more bacterial than p3's.
    rows = [("p0", "i0", "regular", 0.8, 0.1, 0.1), ("p1", "i1", "bacterial", 0.1, 0.8, 0.1),
            ("p2", "i2", "covid", 0.1, 0.1, 0.8), ("p0", "i3", "bacterial", 0.05, 0.9, 0.05),
            ("p3", "i4", "bacterial", 0.3, 0.45, 0.25), ("p2", "i5", "covid", 0.2, 0.2, 0.6)]
    table = pd.DataFrame(rows, columns=["patient_id", "item_id", "label", "p_regular", "p_bacterial", "p_covid"])
    monkeypatch.setattr(curves, "UNIT", "item_id")
    assert curves.patient_auc(table, labels, None) == curves.patient_auc(table, sorted(labels), None) == 1.0
    monkeypatch.setattr(curves, "UNIT", "patient_id")
    by_patient = curves.patient_auc(table, labels, None)
    assert by_patient == curves.patient_auc(table, sorted(labels), None) < 1.0, "p0's items pooled under one label"


def test_the_default_recipe_is_config_yamls_with_the_plans_real_data_values():
    import yaml

    from sonoflow.config import DEFAULT_CONFIG

    curves = load_benchmark("epoch_curves")
    recipe = curves.default_recipe()
    train = yaml.safe_load(DEFAULT_CONFIG.read_text())["train"]
    assert recipe["model"] == train["models"][0] and recipe["weights"] == train["weights"][recipe["model"]]
    assert recipe["input_size"] == 224, "the plan's classifier size on real data"
    for key in ("lr", "augment", "label_smoothing", "ema", "warmup_epochs", "tta", "class_weighting"):
        assert recipe[key] == train[key], key
    assert all(recipe[key] != "auto" for (section, key) in curves.PLANNED if section == "train")


def test_recipe_ensemble_averages_each_variants_kept_epoch(tmp_path, monkeypatch, capsys):
    """Variant x keeps epoch 2 (its best validation AUC), y epoch 1; the ensemble is the frame-wise
    mean of those two epochs' probabilities."""
    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    ensemble = load_benchmark("recipe_ensemble")
    table = probs_table()
    for name, kept_auc in (("x", [0.5, 0.9, 0.6]), ("y", [0.9, 0.5, 0.6])):
        (tmp_path / name).mkdir()
        table.assign(item_id=table["patient_id"]).to_csv(tmp_path / name / "probs.csv", index=False)
        for fold in (0, 1):
            history = pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [0.6, 0.6, 0.6], "val_auc": kept_auc})
            history.to_csv(tmp_path / name / f"history_{fold}.csv", index=False)
    x, y = ensemble.kept(tmp_path / "x", "auc", 5), ensemble.kept(tmp_path / "y", "auc", 5)
    assert set(x["kept_epoch"]) == {2} and set(y["kept_epoch"]) == {1}
    monkeypatch.setattr(ensemble, "read_splits", lambda path: {"labels": ["a", "b"]})
    monkeypatch.setattr("sys.argv", ["recipe_ensemble.py", str(tmp_path / "run"), str(tmp_path / "x"),
                                     str(tmp_path / "y"), "--positive", "b"])
    ensemble.main()
    out = capsys.readouterr().out
    assert "x: kept epochs [2, 2]" in out and "y: kept epochs [1, 1]" in out
    # Validation: epoch 2 ranks right (1.0), epoch 1 backwards (0.0); their mean p(b) is 0.705 for
    # a and 0.74 for b: ranked right. Test: epoch 2 gives 0.9 vs 0.8 (backwards), epoch 1 0.51 vs 0.49.
    assert "x: AUC 1.000" in out.split("test fold ensemble")[0]
    assert "ensemble: AUC 1.000" in out.split("test fold ensemble")[0]
    assert "ensemble: AUC 0.000" in out.split("test fold ensemble")[1]
