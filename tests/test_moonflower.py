"""MoonFlowerScan / QuickScan: geometry, physics of the frames, reproducibility."""

import numpy as np
import pytest

from ptyscan import EOS, WAIT
from ptyscan.scans import get_scan

MoonFlower = get_scan("MoonFlowerScan")


def all_frames(scan, per_chunk):
    idx, data, pos = [], [], []
    while (chunk := scan.auto(per_chunk)) is not EOS:
        if chunk is WAIT:
            continue
        idx.append(chunk.indices)
        data.append(chunk.data)
        pos.append(chunk.positions)
    return np.concatenate(idx), np.concatenate(data), np.concatenate(pos)


def test_delivers_exactly_num_frames_unlike_ptypy():
    for n in (1, 39, 40, 92):
        idx, data, _ = all_frames(MoonFlower(num_frames=n, shape=32, seed=0), 16)
        assert idx.tolist() == list(range(n))
        assert data.shape == (n, 32, 32)


def test_noise_free_frames_are_the_far_field_of_probe_times_object():
    scan = MoonFlower(num_frames=5, shape=64, add_poisson_noise=False, seed=0)
    _, data, _ = all_frames(scan, 5)
    obj, probe = scan.true_object, scan.true_probe
    for k, (y, x) in enumerate(scan.true_positions_px[:5]):
        exit_wave = probe.astype(np.complex128) * obj[y : y + 64, x : x + 64]
        far = np.fft.fftshift(np.fft.fft2(exit_wave)) / 64  # unitary DFT
        np.testing.assert_allclose(data[k], np.abs(far) ** 2, rtol=2e-4, atol=1e-2)
        # Parseval: the frame holds the photons that passed the object
        assert data[k].sum() == pytest.approx(np.sum(np.abs(exit_wave) ** 2), rel=1e-4)


def test_probe_holds_the_photons():
    scan = MoonFlower(photons=3e6, shape=64, seed=0)
    assert np.sum(np.abs(scan.true_probe.astype(np.complex128)) ** 2) == pytest.approx(
        3e6, rel=1e-5
    )


def test_geometry_follows_ptypy():
    scan = MoonFlower(shape=128, energy=7.2, distance=7.19, psize=172e-6, density=0.2, seed=0)
    wavelength = 6.62607015e-34 * 299792458.0 / (7.2e3 * 1.602176634e-19)
    pixel = wavelength * 7.19 / (128 * 172e-6)
    np.testing.assert_allclose(scan.sample_pixel_m, [pixel, pixel])
    scan.initialize()
    pos = scan.positions
    # round model: the first shell sits one step (pixel * shape * density) from the centre
    step = pixel * 128 * 0.2
    r = np.hypot(*(pos[1:7] - pos[0]).T)
    np.testing.assert_allclose(r, step, atol=pixel)  # positions are snapped to the pixel grid
    # positions are exactly on the sample-pixel grid, consistent with the views used
    np.testing.assert_allclose(
        np.diff(scan.true_positions_px, axis=0), np.diff(pos, axis=0) / pixel, atol=1e-9
    )


def test_raster_model_spacing():
    scan = MoonFlower(model="raster", num_frames=16, shape=64, density=0.25, seed=0)
    scan.initialize()
    px = scan.true_positions_px
    assert np.unique(px[:, 0]).size == 4 and np.unique(px[:, 1]).size == 4
    assert set(np.diff(np.unique(px[:, 1])).tolist()) == {16}  # 64 * 0.25


def test_noise_depends_only_on_seed_and_frame_index():
    a = all_frames(MoonFlower(num_frames=20, shape=32, seed=5), 7)[1]
    b = all_frames(MoonFlower(num_frames=20, shape=32, seed=5), 20)[1]
    c = all_frames(MoonFlower(num_frames=20, shape=32, seed=6), 20)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(a, np.round(a))  # Poisson counts


def test_poisson_noise_statistics():
    scan = MoonFlower(num_frames=30, shape=32, photons=1e5, seed=1)
    _, noisy, _ = all_frames(scan, 30)
    clean = scan.diffraction(np.arange(30))
    # For Poisson counts, (n - λ)² has mean λ: the normalised variance is ~1
    ratio = np.sum((noisy - clean) ** 2) / np.sum(clean)
    assert ratio == pytest.approx(1.0, abs=0.05)


def test_unseeded_scan_draws_and_records_a_seed():
    scan = MoonFlower(num_frames=3, shape=32)
    assert scan.seed is None
    first = scan.auto(3).data
    again = MoonFlower(num_frames=3, shape=32, seed=scan.seed).auto(3).data
    np.testing.assert_array_equal(first, again)


def test_psf_blurs_but_keeps_photons():
    sharp = MoonFlower(num_frames=1, shape=64, add_poisson_noise=False, seed=0).auto(1).data[0]
    blurred = MoonFlower(num_frames=1, shape=64, add_poisson_noise=False, psf=1.5, seed=0)
    blurred = blurred.auto(1).data[0]
    assert blurred.sum() == pytest.approx(sharp.sum(), rel=1e-3)

    def roughness(img):
        return np.sum(np.diff(img, axis=0) ** 2) + np.sum(np.diff(img, axis=1) ** 2)

    assert roughness(blurred) < 0.5 * roughness(sharp)


def test_quickscan_defaults():
    scan = get_scan("QuickScan")(num_frames=4, seed=0)
    chunk = scan.auto(4)
    assert chunk.data.shape == (4, 64, 64)
    assert scan.info.density == 0.05
