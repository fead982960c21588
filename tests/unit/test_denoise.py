import numpy as np
import pytest

from sonoflow.denoise import METHODS, denoise_frames


def speckled_stack(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = np.zeros((3, 64, 64), np.float32)
    clean[:, 16:48, 16:48] = 120.0
    # Log-compressed speckle: multiplicative, mean 1, about 15 grey levels of spread.
    speckle = 1.0 + 0.12 * rng.standard_normal(clean.shape).astype(np.float32)
    noisy = clean * speckle + 20
    return np.clip(clean + 20, 0, 255).astype(np.uint8), np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "none"])
def test_each_filter_reduces_speckle_error(method):
    clean, noisy = speckled_stack()
    out = denoise_frames(noisy, method)
    assert out.shape == noisy.shape and out.dtype == np.uint8
    # Judge inside the bright region, away from its edges: speckle, not edge blur.
    inner = (slice(None), slice(20, 44), slice(20, 44))
    err_before = np.abs(noisy[inner].astype(int) - clean[inner]).mean()
    err_after = np.abs(out[inner].astype(int) - clean[inner]).mean()
    assert err_after < 0.9 * err_before, (method, err_before, err_after)


def test_gaussian_matches_opencv_5x5_and_sigma_matters():
    import cv2

    _, noisy = speckled_stack(1)
    out = denoise_frames(noisy, "gaussian", {"gaussian": {"ksize": 5, "sigma": 1.0}})
    np.testing.assert_array_equal(out[0], cv2.GaussianBlur(noisy[0], (5, 5), 1.0))
    wider = denoise_frames(noisy, "gaussian", {"gaussian": {"ksize": 5, "sigma": 3.0}})
    assert not np.array_equal(out, wider)


def test_none_copies_and_input_untouched():
    _, noisy = speckled_stack(2)
    before = noisy.copy()
    out = denoise_frames(noisy, "none")
    np.testing.assert_array_equal(out, noisy)
    out[:] = 0
    np.testing.assert_array_equal(noisy, before)


def test_empty_stack_and_bad_input():
    empty = np.zeros((0, 32, 32), np.uint8)
    assert denoise_frames(empty).shape == (0, 32, 32)
    with pytest.raises(ValueError, match="unknown denoise method"):
        denoise_frames(empty, "wavelet")
    with pytest.raises(ValueError, match="uint8"):
        denoise_frames(np.zeros((2, 8, 8), np.float32))
