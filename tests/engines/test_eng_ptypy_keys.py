"""ptypy 0.9 engine blocks (issue 11): every DM and ML parameter name is accepted; the ones
ptyscan does not implement only at ptypy's default; ML_type in any case."""

import pytest
from _helpers import job_recipe

from ptyscan.app.runner import run_recipe
from ptyscan.engines.params import DMParams, MLParams
from ptyscan.engines.ptypy_keys import PTYPY_ONLY
from ptyscan.errors import RecipeError
from ptyscan.io import read_ptyr
from ptyscan.params import validate_params

# ptypy 0.9's parameter names (ptypy/engines/base.py, projectional.py, ML.py Defaults blocks)
PTYPY_BASE = [
    "name",
    "numiter",
    "numiter_contiguous",
    "probe_support",
    "probe_fourier_support",
    "record_local_error",
    "position_refinement",
]
PTYPY_DM = [
    *PTYPY_BASE,
    "alpha",
    "probe_update_start",
    "subpix_start",
    "subpix",
    "update_object_first",
    "overlap_converge_factor",
    "overlap_max_iterations",
    "probe_inertia",
    "object_inertia",
    "fourier_power_bound",
    "fourier_relax_factor",
    "obj_smooth_std",
    "clip_object",
    "probe_center_tol",
    "compute_log_likelihood",
]
PTYPY_ML = [
    *PTYPY_BASE,
    "ML_type",
    "floating_intensities",
    "intensity_renormalization",
    "reg_del2",
    "reg_del2_amplitude",
    "smooth_gradient",
    "smooth_gradient_decay",
    "scale_precond",
    "scale_probe_object",
    "probe_update_start",
    "poly_line_coeffs",
    "wavefield_precond",
    "wavefield_delta_object",
    "wavefield_delta_probe",
]


@pytest.mark.parametrize(("model", "names"), [(DMParams, PTYPY_DM), (MLParams, PTYPY_ML)])
def test_every_ptypy_parameter_name_is_accepted(model, names):
    assert set(names) <= set(model.model_fields)


@pytest.mark.parametrize(
    ("model", "engine"), [(DMParams, "DM"), (MLParams, "ML")], ids=["DM", "ML"]
)
def test_unimplemented_ones_only_at_ptypys_default(model, engine):
    for key, default in PTYPY_ONLY[engine].items():
        validate_params(model, {key: default}, prefix="engines[0]")
        other = (
            "fourier" if isinstance(default, str) else (True if default in (None, False) else 7.0)
        )
        with pytest.raises(RecipeError) as err:
            validate_params(model, {key: other}, prefix="engines[0]")
        (line,) = err.value.problems
        assert line == (
            f"engines[0].{key}: ptypy parameter not supported by ptyscan's {engine} "
            f"(only its default {default!r} is accepted), got {other!r}"
        )


def test_subpix_message_as_the_issue_wants_it():
    with pytest.raises(
        RecipeError,
        match=r"engines\[0\]\.subpix: ptypy parameter not supported "
        r"by ptyscan's DM \(only its default 'linear' is accepted\)",
    ):
        validate_params(DMParams, {"subpix": "fourier"}, prefix="engines[0]")


def test_ml_type_is_case_insensitive():
    assert validate_params(MLParams, {"ML_type": "Gaussian"}).ML_type == "gaussian"
    assert validate_params(MLParams, {"ML_type": "POISSON"}).ML_type == "poisson"


def test_ptypy_only_keys_stay_out_of_dumped_recipes():
    dumped = validate_params(DMParams, {"subpix": "linear", "numiter_contiguous": 10}).to_dict()
    assert "subpix" not in dumped and dumped["numiter_contiguous"] == 10


def test_ptypy_template_engine_blocks_run_unchanged(tmp_path):
    """The engine blocks of ptypy's templates (engines/numpy/moonflower_DM_ML.py and
    ptypy_i13_AuStar_farfield.py), as YAML: p.engines.engine00 → engines[0], ..."""
    dm = {
        "name": "DM",
        "numiter": 3,
        "numiter_contiguous": 10,
        "probe_support": 0.5,
        "object_inertia": 1.0,
        "probe_inertia": 0.001,
        "obj_smooth_std": 10,
        "clip_object": None,
        "alpha": 1,
        "probe_update_start": 2,
        "update_object_first": True,
        "overlap_converge_factor": 0.5,
        "overlap_max_iterations": 100,
        "fourier_relax_factor": 0.05,
        "probe_center_tol": None,
        "compute_log_likelihood": True,
    }
    ml = {
        "name": "ML",
        "numiter": 2,
        "numiter_contiguous": 5,
        "ML_type": "Gaussian",
        "reg_del2": False,
        "reg_del2_amplitude": 1.0,
        "floating_intensities": False,
        "probe_support": 0.5,
        "scale_precond": True,
        "smooth_gradient": 20.0,
        "smooth_gradient_decay": 1 / 50.0,
        "scale_probe_object": 1.0,
        "probe_update_start": 2,
    }
    summary = run_recipe(job_recipe(tmp_path, engines=[dm, ml]))
    res = read_ptyr(summary.result)
    assert [e["iterations_done"] for e in res.engines] == [3, 2]
