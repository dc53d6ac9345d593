"""Output formats are plugins: a new prepared-data or result format is one class."""

from pathlib import Path

import numpy as np
import pytest
from _helpers import job_recipe as recipe

from ptyscan import registry
from ptyscan.app.runner import prepare, run_recipe
from ptyscan.errors import RecipeError
from ptyscan.io import PtydWriter, read_ptyd, read_ptyr
from ptyscan.io.sinks import PreparedSink, ResultSink, prepared_sink_class, result_sinks


class NpzSink:
    """A made-up result format: object and probe in a NumPy .npz file."""

    suffix = ".npz"

    @staticmethod
    def write(path, result):
        np.savez(path, object=result.object, probe=result.probe)
        return Path(path)


class CountingWriter(PtydWriter):
    """A made-up prepared-data format: the .ptyd layout, counting the chunks written."""

    chunks: list = []

    def write_chunk(self, n, **arrays):
        CountingWriter.chunks.append(n)
        super().write_chunk(n, **arrays)


@pytest.fixture
def formats(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_RESULT_FORMATS, "npz", "test_sinks:NpzSink")
    monkeypatch.setitem(registry.BUILTIN_PREPARED_FORMATS, "h5c", "test_sinks:CountingWriter")
    CountingWriter.chunks = []


def test_the_builtin_writers_have_the_sink_interface():
    assert issubclass(PtydWriter, PreparedSink)
    assert not issubclass(NpzSink, PreparedSink)
    assert issubclass(prepared_sink_class("run/a.ptyd"), PtydWriter)
    assert issubclass(prepared_sink_class("run/a.h5"), PtydWriter)  # unregistered: .ptyd layout
    ((sink, path),) = result_sinks(["ptyr"], "out/job.ptyr")
    assert isinstance(sink, ResultSink) and not isinstance(PtydWriter, ResultSink)
    assert path == Path("out/job.ptyr")


def test_a_result_format_is_one_class(tmp_path, formats):
    r = recipe(tmp_path, run={"result_formats": ["ptyr", "npz"]})
    summary = run_recipe(r)
    ptyr = read_ptyr(summary.result)
    npz = np.load(tmp_path / "out" / "job.npz")
    np.testing.assert_array_equal(npz["object"], ptyr.object)
    np.testing.assert_array_equal(npz["probe"], ptyr.probe)


def test_an_unknown_result_format_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError) as err:
        recipe(tmp_path, run={"result_formats": ["ptry"]})
    assert err.value.problems == [
        "run.result_formats: unknown result format 'ptry' (did you mean 'ptyr'?); "
        "available: cxi, npz, ptypy, ptyr, tiff, got ['ptry']"
    ]


def test_a_prepared_format_is_chosen_by_the_file_suffix(tmp_path, formats):
    dfile = tmp_path / "scan.h5c"
    summary = prepare(recipe(tmp_path, scan={"dfile": str(dfile)}))
    assert summary.frames == 24
    assert CountingWriter.chunks == [0, 1, 2]  # 24 frames in chunks of 10
    assert read_ptyd(dfile).data.shape == (24, 32, 32)
