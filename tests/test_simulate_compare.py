"""phase_correlation: a known shift and offset give correlation 1 and that shift back."""

import numpy as np
import pytest

from ptyscan.errors import ParameterError
from ptyscan.simulate.compare import fourier_shift, phase_correlation


def band_limited(shape, seed, cutoff=0.2):
    """A smooth periodic random field (frequencies below ``cutoff`` cycles/px)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal(shape))
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    spectrum[np.hypot(ky, kx) > cutoff] = 0
    return np.fft.ifft2(spectrum).real


def test_fourier_shift_matches_an_integer_roll_and_a_computed_subpixel_shift():
    img = band_limited((48, 48), 1)
    inner = (slice(12, 36), slice(12, 36))
    assert np.allclose(fourier_shift(img, (2, -3))[inner], np.roll(img, (2, -3), (0, 1))[inner])
    # a sine moved by 0.3 px is the sine evaluated 0.3 px earlier
    x = np.arange(64)
    wave = np.tile(np.sin(2 * np.pi * 5 * x / 64), (8, 1))
    moved = fourier_shift(wave, (0, 0.3))
    assert np.allclose(moved[:, 16:48], np.sin(2 * np.pi * 5 * (x - 0.3) / 64)[16:48], atol=2e-3)


def test_a_known_subpixel_shift_and_offset_give_correlation_one():
    truth = band_limited((64, 64), 2)
    shift = np.array([0.37, -1.62])
    # phase = truth moved by -shift plus a constant: moving it by +shift recovers truth
    phase = (
        np.fft.ifft2(
            np.fft.fft2(truth)
            * np.exp(
                2j
                * np.pi
                * (np.fft.fftfreq(64)[:, None] * shift[0] + np.fft.fftfreq(64) * shift[1])
            )
        ).real
        + 0.8
    )
    region = (slice(16, 48), slice(16, 48))
    corr, found = phase_correlation(phase, truth, region)
    assert corr > 0.9999
    assert np.allclose(found, shift, atol=0.02)
    # unregistered, the same maps correlate clearly less
    a, b = phase[region].ravel(), truth[region].ravel()
    assert np.corrcoef(a, b)[0, 1] < 0.95


def test_noise_lowers_the_correlation_by_the_computed_amount():
    truth = band_limited((64, 64), 3)
    region = (slice(8, 56), slice(8, 56))
    noise = np.random.default_rng(4).standard_normal(truth.shape)
    noise *= truth[region].std() / noise[region].std()  # equal variances
    corr, found = phase_correlation(truth + noise, truth, region)
    # corr(t + n, t) = 1 / sqrt(2) for independent noise of the same variance
    assert corr == pytest.approx(1 / np.sqrt(2), abs=0.05)
    assert np.all(np.abs(found) < 0.5)


def test_mismatched_maps_are_named_errors():
    with pytest.raises(ParameterError, match="same shape"):
        phase_correlation(np.zeros((4, 4)), np.zeros((5, 4)))
    with pytest.raises(ParameterError, match="at least 4"):
        phase_correlation(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4), bool))
