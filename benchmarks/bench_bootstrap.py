"""The patient bootstrap of the confidence intervals: vectorised vs a Python loop of sklearn calls.

A generated prediction table (``--patients`` patients of 4 classes, ``--frames`` frames each,
probabilities leaning towards the true class) is scored at image level, where every resample
weights the frames by how often their patient was drawn, as evaluate does:
- new: ``sonoflow.metrics.with_confidence`` (per-patient statistics computed once; each
  resample is a matrix product), ``--n-boot`` resamples, the whole table with its intervals;
- old: what evaluate did before, every resample scored by scikit-learn calls (confusion matrix,
  precision/recall/F1 and one weighted ROC AUC per class) in a Python loop, timed on
  ``--old-boot`` resamples and scaled to ``--n-boot`` (its time is linear in the resamples).
Prints both times and the ratio, and checks on the old loop's resamples that both agree.

    python benchmarks/bench_bootstrap.py [--patients 300] [--frames 3] [--n-boot 2000] [--old-boot 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from sonoflow.metrics import Question, bootstrap_counts, patient_bootstrap, with_confidence

LABELS = ("cyst", "hyperechoic_mass", "hypoechoic_mass", "normal")


def prediction_table(patients: int, frames: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(patients) % len(LABELS), frames)
    logits = rng.normal(0, 1, (len(label), len(LABELS)))
    logits[np.arange(len(label)), label] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return pd.DataFrame({"patient_id": np.repeat([f"P{p:04d}" for p in range(patients)], frames),
                         "label": np.array(LABELS)[label], **{f"prob_{k}": probs[:, i] for i, k in enumerate(LABELS)}})


def old_loop(table: pd.DataFrame, question: Question, n_boot: int, seed: int) -> list[dict]:
    """The former implementation's work per resample: sklearn on the frames, weighted by the draws."""
    codes, patients = pd.factorize(table["patient_id"])
    target, score, predicted = question.target(table), question.score(table), question.predict(table)
    k = len(LABELS)
    out = []
    for counts in bootstrap_counts(len(patients), n_boot, seed):
        weight = counts[codes].astype(float)
        keep = weight > 0
        t, s, p, w = target[keep], score[keep], predicted[keep], weight[keep]
        matrix = confusion_matrix(t, p, labels=list(range(k)), sample_weight=w)
        precision, recall, f1, _ = precision_recall_fscore_support(t, p, labels=list(range(k)), sample_weight=w,
                                                                   zero_division=np.nan)
        auc = [roc_auc_score(t == c, s[:, c], sample_weight=w) if 0 < (t == c).sum() < len(t) else np.nan
               for c in range(k)]
        out.append({"accuracy": np.trace(matrix) / matrix.sum(), "recall": recall, "auc": np.array(auc)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--old-boot", type=int, default=200)
    args = parser.parse_args()
    table, question = prediction_table(args.patients, args.frames), Question(LABELS)

    start = time.perf_counter()
    result = with_confidence(table, question, n_boot=args.n_boot, seed=0)
    new_seconds = time.perf_counter() - start

    start = time.perf_counter()
    old = old_loop(table, question, args.old_boot, seed=0)
    old_seconds = (time.perf_counter() - start) * args.n_boot / args.old_boot

    fast = patient_bootstrap(table, question, n_boot=args.old_boot, seed=0)
    for b, values in enumerate(old):
        assert np.isclose(fast[("accuracy", "")][b], values["accuracy"])
        np.testing.assert_allclose([fast[("sensitivity", k)][b] for k in LABELS], values["recall"])
        np.testing.assert_allclose([fast[("auc", k)][b] for k in LABELS], values["auc"])
    print(f"{args.patients} patients x {args.frames} frames, {len(LABELS)} classes, {args.n_boot} resamples, "
          f"{len(result)} metrics with intervals")
    print(f"new (vectorised, whole table):          {new_seconds:8.2f} s")
    print(f"old (loop of sklearn calls, {args.old_boot} timed): {old_seconds:8.2f} s scaled to {args.n_boot}")
    print(f"ratio old / new: {old_seconds / new_seconds:.0f}x; both agree on the {args.old_boot} shared resamples")


if __name__ == "__main__":
    main()
