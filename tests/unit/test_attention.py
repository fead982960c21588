"""Attention pooling: the weighted mean, the network that learns which frames to trust, and its
place in evaluate (beside the mean, never first, weights merged per fold)."""

import numpy as np
import pandas as pd
import pytest
import torch

from sonoflow.attention import Bags, attention_weights, bag_softmax, fit_attention, frame_features, pooled
from sonoflow.evaluate import AttentionSettings, EvaluateSettings, evaluate_run, with_attention
from sonoflow.metrics import aggregate
from sonoflow.models import build_model
from test_evaluate import LABELS, fold_tables


def test_attention_pooling_is_the_weighted_mean_renormalised_per_unit():
    table = pd.DataFrame({"patient_id": ["A", "A", "A", "B"], "label": ["benign"] * 3 + ["malignant"],
                          "prob_benign": [0.9, 0.2, 0.4, 0.3], "prob_malignant": [0.1, 0.8, 0.6, 0.7],
                          "attention": [2.0, 1.0, 1.0, 0.5]})
    pooled_table = aggregate(table, LABELS, pooling="attention").set_index("patient_id")
    assert pooled_table.loc["A", "prob_benign"] == pytest.approx((2 * 0.9 + 0.2 + 0.4) / 4)
    assert pooled_table.loc["B", "prob_malignant"] == pytest.approx(0.7) and pooled_table.loc["A", "frames"] == 3
    # Equal weights: the mean.
    mean = aggregate(table.assign(attention=1.0), LABELS, pooling="attention")
    pd.testing.assert_frame_equal(mean, aggregate(table, LABELS))
    with pytest.raises(ValueError, match="attention"):
        aggregate(table.drop(columns="attention"), LABELS, pooling="attention")


def test_bag_softmax_sums_to_one_per_bag():
    scores = torch.tensor([1.0, 2.0, 3.0, 100.0, -100.0])
    bags = torch.tensor([0, 0, 1, 1, 2])
    weights = bag_softmax(scores, bags, 3)
    sums = torch.zeros(3).index_add(0, bags, weights)
    assert torch.allclose(sums, torch.ones(3)) and torch.isfinite(weights).all()
    assert weights[0] == pytest.approx(1 / (1 + np.e)) and weights[4] == 1.0


def planted_bags(n_bags: int, seed: int, frames: int = 6, dim: int = 16) -> Bags:
    """Bags of ``frames`` frames; one frame per bag is informative (its embedding carries a marker
    in dimension 0 and its probability is the truth, 0.9), the others are noise (probability 0.5
    with a random tilt). The mean dilutes the informative frame; attention can find it."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, n_bags)
    embeddings, probs, index = [], [], []
    for bag, target in enumerate(targets):
        informative = rng.integers(frames)
        for frame in range(frames):
            h = rng.normal(size=dim)
            if frame == informative:
                h[0] += 4.0
                p = 0.9
            else:
                p = float(np.clip(0.5 + rng.normal(0, 0.25), 0.02, 0.98))
            positive = p if target == 1 else 1 - p
            embeddings.append(h)
            probs.append([1 - positive, positive])
            index.append(bag)
    return Bags(torch.tensor(np.array(embeddings), dtype=torch.float32), torch.tensor(probs, dtype=torch.float32),
                torch.tensor(index), torch.tensor(targets))


def unit_auc(bags: Bags, weights) -> float:
    from sklearn.metrics import roc_auc_score

    unit = pooled(torch.as_tensor(weights, dtype=torch.float32), bags.probs, bags.index, bags.n)[:, 1]
    return roc_auc_score(bags.targets.numpy(), unit.numpy())


def test_attention_learns_to_weigh_the_informative_frame_on_training_units_only():
    train, val, test = planted_bags(80, 0), planted_bags(40, 1), planted_bags(60, 2)
    network, history, scaler = fit_attention(train, val, 2, AttentionSettings(epochs=300, patience=40, seed=0))
    weights = attention_weights(network, test, scaler)
    uniform = 1.0 / torch.bincount(test.index).float()[test.index]
    informative = test.embeddings[:, 0] > 2.0
    # The informative frame gets most of its bag's weight, and the unit AUC beats the mean's.
    assert weights[informative.numpy()].mean() > 0.5 > 1 / 6
    assert unit_auc(test, weights) > unit_auc(test, uniform) + 0.05
    assert history.at[0, "step"] == 0 and history["val_loss"].min() < history.at[0, "val_loss"]
    assert history["best"].sum() == 1 and history.loc[history["best"], "val_loss"].item() == history["val_loss"].min()


def test_attention_keeps_the_mean_when_weighting_does_not_help_validation():
    train = planted_bags(40, 3)
    # Validation units whose frames all carry the same probability: no weighting changes their
    # loss, so no step beats step 0 (the mean), and the kept network gives uniform weights, even
    # on the training units where it had learned to weigh.
    val = planted_bags(30, 4)
    same = torch.zeros(val.n, 2).index_add(0, val.index, val.probs) / torch.bincount(val.index)[:, None]
    val = Bags(val.embeddings, same[val.index], val.index, val.targets)
    network, history, scaler = fit_attention(train, val, 2, AttentionSettings(epochs=50, patience=5))
    assert history["train_loss"].iloc[-1] < history.at[0, "train_loss"], "it did learn on the training units"
    assert int(history.loc[history["val_loss"].idxmin(), "step"]) == 0 and len(history) == 1 + 5
    uniform = 1.0 / torch.bincount(train.index).float()[train.index]
    assert np.allclose(attention_weights(network, train, scaler), uniform.numpy())


def test_frame_features_are_the_heads_input_and_probabilities_match_predict():
    from sonoflow.train import predict_proba

    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 3, input_size=64).eval()
    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 64), dtype=np.uint8)
    probs, features = frame_features(model, "efficientnet_lite0", frames, 64, batch_size=2)
    assert features.shape == (5, model.classifier.in_features)
    # The head on the features gives the model's own probabilities: they are what it decided on.
    with torch.no_grad():
        from_features = torch.softmax(model.classifier(torch.as_tensor(features)), 1).numpy()
    assert np.allclose(from_features, probs, atol=1e-5)
    # With test-time views: the same probabilities as predict_proba, features averaged over the views.
    probs, averaged = frame_features(model, "efficientnet_lite0", frames, 64, batch_size=2, tta=["hflip"])
    assert np.allclose(probs, predict_proba(model, frames, 64, batch_size=2, tta=["hflip"]), atol=1e-6)
    _, flipped = frame_features(model, "efficientnet_lite0", frames[:, :, ::-1].copy(), 64, batch_size=2)
    assert np.allclose(averaged, (features + flipped) / 2, atol=1e-5)


def test_evaluate_merges_each_folds_weights_and_compares_attention_with_the_mean():
    val, test = fold_tables(skill=0.8)
    rng = np.random.default_rng(0)
    weights_val, weights_test = ([t[["shard", "row", "item_id", "frame_index"]].assign(
        attention=rng.uniform(0.1, 1, len(t))) for t in tables] for tables in (val, test))
    settings = EvaluateSettings(positive=("malignant",), n_boot=100, pooling=("mean", "attention"))
    result = evaluate_run(with_attention(val, weights_val), with_attention(test, weights_test), LABELS, settings)
    table = result.pooling.set_index(["part", "pooling"])
    assert set(table.index) == {(p, m) for p in ("cv", "test") for m in ("mean", "attention")}
    assert 0 <= table.loc[("test", "attention"), "delong_p_vs_mean"] <= 1
    # A frame without its weight (stale attention tables) is an error, as is attention listed first.
    with pytest.raises(ValueError, match="no attention weight"):
        with_attention(val[:1], [weights_val[0].iloc[1:]])
    with pytest.raises(ValueError, match="cannot come first"):
        EvaluateSettings(pooling=("attention", "mean"))
