"""How tests/conftest.py spreads the suite over pytest-xdist workers (`make test` runs `-n 3 --dist
loadgroup`): the tests that read the shared demo run stay on one worker, the SLURM tests on
another, and the demo DAG is built once for all of them. pytest 9.2 moved the node id that
pytest-xdist 3.8 rewrites to name a group: the marker was set and ignored, and every worker ran the
demo DAG (about 190 s each on 2 cores). This runs tests/conftest.py's own collection hook and its
build-once helper in a scratch suite under three workers and checks where each test ran."""

import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

CONFTEST = f'''
import importlib.util, os, time, pytest
spec = importlib.util.spec_from_file_location("sonoflow_conftest", {str(TESTS / "conftest.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
pytest_collection_modifyitems = module.pytest_collection_modifyitems  # with its hookimpl options

def build(folder):  # a cheap stand-in for the demo DAG: slow enough that the other workers must wait
    with open(folder.parent / "builds.txt", "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    time.sleep(2)
    (folder / "result.txt").write_text("built")

@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    return module.build_once(tmp_path_factory.getbasetemp().parent, "demo_run", build)
'''

DEMO_TESTS = '''
import os, time, pytest

def test_reads_demo_a(demo_run):
    assert (demo_run / "result.txt").read_text() == "built"
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("mode", ["full", "roi"])
def test_reads_demo_b(demo_run, mode):
    assert (demo_run / "result.txt").read_text() == "built"

@pytest.mark.parametrize("n", range(6))
def test_independent(n):
    time.sleep(0.2)

def test_reads_demo_c(demo_run, tmp_path):
    assert (demo_run / "result.txt").read_text() == "built"
'''

SLURM_TESTS = '''
def test_cluster_run_a(demo_run):
    assert (demo_run / "result.txt").read_text() == "built"

def test_cluster_run_b(demo_run):
    assert (demo_run / "result.txt").read_text() == "built"
'''


def test_demo_and_slurm_tests_each_share_a_worker_and_the_demo_is_built_once(tmp_path):
    suite = tmp_path / "suite"
    (suite / "slurm").mkdir(parents=True)
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_demo.py").write_text(DEMO_TESTS)
    (suite / "slurm" / "test_cluster.py").write_text(SLURM_TESTS)
    base = tmp_path / "base"
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                             "--rootdir", str(suite), "--basetemp", str(base), str(suite)],
                            capture_output=True, text=True, timeout=120, cwd=suite)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    workers = {test: worker for worker, test in re.findall(r"\[(gw\d)\] \[\s*\d+%\] PASSED (\S+)", output)}
    assert len(workers) == 12, output[-3000:]
    demo = {worker for test, worker in workers.items() if "test_reads_demo" in test}
    slurm = {worker for test, worker in workers.items() if test.startswith("slurm/")}
    assert len(demo) == 1, f"the demo run's tests were spread over {sorted(demo)}:\n{output[-2000:]}"
    assert len(slurm) == 1, f"the SLURM tests were spread over {sorted(slurm)}:\n{output[-2000:]}"
    assert demo != slurm, "the SLURM tests wait beside the demo tests, not after them"
    assert set(workers.values()) == {"gw0", "gw1", "gw2"}, "the independent tests still use every worker"
    builders = (base / "builds.txt").read_text().split()
    assert len(builders) == 1 and set(builders) <= demo | slurm, f"the demo was built by {builders}"


def test_a_failed_build_is_never_read_as_built(tmp_path):
    """The folder of a build that raised is removed and built again by the next caller."""
    import pytest
    from conftest import build_once

    def fails(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        build_once(tmp_path, "run", fails)
    assert not (tmp_path / "run.built").exists()
    folder = build_once(tmp_path, "run", lambda folder: (folder / "whole.txt").write_text("whole"))
    assert sorted(path.name for path in folder.iterdir()) == ["whole.txt"]
    assert build_once(tmp_path, "run", fails) == folder  # built: not built again
