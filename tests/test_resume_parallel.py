"""fit-density survives kill -9, and serial, process-parallel and Dask runs agree."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest

from densnet_cli.data.hdf5 import DensityDataset
from tests.conftest import FAST, WATER, jiggled, run_cli, run_densnet

# Slow enough per frame (≈0.5 s) that the kill lands mid-run, fast enough for the suite.
RESUME_LEVEL = ["--basis", "def2-SVP", "--grid-level", "2", "--threads", "1", "--no-progress"]


def _assert_same_dataset(a: DensityDataset, b: DensityDataset, rtol: float = 0.0):
    """Same frames, settings and numbers (``rtol=0``: bit for bit); wall times aside."""
    assert len(a) == len(b)
    assert a.metadata["settings"] == b.metadata["settings"]
    assert a.metadata["source"]["frames"] == b.metadata["source"]["frames"]
    assert a.arrays.keys() == b.arrays.keys()
    for name, x in a.arrays.items():
        if x.dtype.kind == "f" and name != "frames/wall_time":
            np.testing.assert_allclose(x, b.arrays[name], rtol=rtol, atol=rtol)
        elif x.dtype.kind != "f":
            np.testing.assert_array_equal(x, b.arrays[name])


def test_killed_run_resumes_to_the_same_dataset(tmp_path):
    geometries = tmp_path / "water.xyz"
    ase.io.write(geometries, jiggled(WATER, 10, seed=1), format="extxyz")
    reference = tmp_path / "reference.h5"
    assert run_densnet("fit-density", geometries, "-o", reference, *RESUME_LEVEL).returncode == 0

    out = tmp_path / "resumed.h5"
    parts = tmp_path / "resumed.h5.parts"
    exe = Path(sys.executable).with_name("densnet")
    proc = subprocess.Popen([str(exe), "fit-density", str(geometries), "-o", str(out),
                             *RESUME_LEVEL], start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("frame_*.npz"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(list(parts.glob("frame_*.npz")))
    assert 3 <= n_before < 10, "the kill must land mid-run for this test to mean anything"
    assert not out.exists()  # no half-written dataset presented as complete

    result = run_densnet("fit-density", geometries, "-o", out, *RESUME_LEVEL)
    assert result.returncode == 0, result.stderr
    assert f"({10 - n_before} labelled now)" in result.stdout
    resumed = DensityDataset(out)
    assert [f.source_index for f in resumed] == list(range(10))  # each frame exactly once
    _assert_same_dataset(DensityDataset(reference), resumed, rtol=1e-10)
    assert not parts.exists()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    d = tmp_path_factory.mktemp("serial")
    ase.io.write(d / "water.xyz", jiggled(WATER, 4, seed=2), format="extxyz")
    code, _, err = run_cli("fit-density", d / "water.xyz", "-o", d / "s.h5", *FAST,
                           "--threads", "1")
    assert code == 0, err
    return d / "water.xyz", DensityDataset(d / "s.h5")


def test_worker_processes_give_the_same_dataset(serial, tmp_path):
    geometries, reference = serial
    code, _, err = run_cli("fit-density", geometries, "-o", tmp_path / "p.h5", *FAST,
                           "--workers", "2", "--threads", "1")
    assert code == 0, err
    _assert_same_dataset(reference, DensityDataset(tmp_path / "p.h5"))


def test_dask_cluster_gives_the_same_dataset(serial, tmp_path):
    from distributed import LocalCluster

    geometries, reference = serial
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        code, _, err = run_cli("fit-density", geometries, "-o", tmp_path / "d.h5", *FAST,
                               "--threads", "1", "--scheduler", cluster.scheduler_address)
    assert code == 0, err
    # Dask workers configure BLAS threads differently: equal to the last bit or two.
    _assert_same_dataset(reference, DensityDataset(tmp_path / "d.h5"), rtol=1e-12)


def test_unreachable_scheduler_is_a_clear_error(serial, tmp_path):
    geometries, _ = serial
    code, _, err = run_cli("fit-density", geometries, "-o", tmp_path / "x.h5", *FAST,
                           "--scheduler", "tcp://127.0.0.1:9")
    assert code == 1 and "cannot reach the Dask scheduler" in err
