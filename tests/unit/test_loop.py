"""The training loop shared by the classifier and the U-Net: its batch sampler draws exactly the
index sequences the two samplers it replaced drew (so results for a seed do not change)."""

import numpy as np
import torch

from sonoflow.segment import epoch_batches
from sonoflow.train import EpochBatches


def drawn(batches) -> list[list[int]]:
    return [index.tolist() for index in batches]


def test_classifier_batches_are_those_of_earlier_versions():
    labels = np.array([0] * 7 + [1] * 3)
    plain = EpochBatches(labels, 4, False, torch.Generator().manual_seed(0))
    assert drawn(plain) == [[4, 1, 7, 5], [3, 9, 0, 8], [6, 2]]
    assert drawn(plain) == [[3, 9, 4, 2], [7, 8, 6, 0], [5, 1]]  # the next epoch, same generator
    balanced = EpochBatches(labels, 4, True, torch.Generator().manual_seed(1))
    assert drawn(balanced) == [[0, 3, 3, 2], [7, 1, 6, 8], [7, 6]]
    assert drawn(balanced) == [[7, 4, 8, 5], [1, 1, 7, 2], [7, 8]]
    assert drawn(EpochBatches(np.arange(9) % 2, 4, False, torch.Generator().manual_seed(2))) == [[0, 8, 6, 3],
                                                                                                  [7, 1, 2, 5]]
    assert drawn(EpochBatches(np.array([0]), 4, False, torch.Generator().manual_seed(0))) == [[0]]


def test_segmenter_batches_are_those_of_earlier_versions():
    generator = torch.Generator().manual_seed(3)
    assert drawn(epoch_batches(5, 2, 7, generator)) == [[1, 0], [3, 4], [0, 1], [2, 4], [1, 4], [3, 0], [0, 2]]
    assert drawn(epoch_batches(5, 2, 7, generator)) == [[0, 3], [4, 1], [1, 2], [0, 3], [2, 3], [4, 1], [4, 3]]
    assert drawn(epoch_batches(9, 4, 0, torch.Generator().manual_seed(4))) == [[4, 7, 1, 8], [3, 5, 0, 2]]
    assert drawn(epoch_batches(10, 3, 2, torch.Generator().manual_seed(5))) == [[1, 4, 9], [6, 3, 5]]
    assert drawn(epoch_batches(1, 3, 3, torch.Generator().manual_seed(0))) == [[0], [0], [0]]
