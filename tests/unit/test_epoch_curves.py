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
