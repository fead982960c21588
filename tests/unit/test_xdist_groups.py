"""The tests that read the shared demo run must land on one pytest-xdist worker, so that the demo
DAG runs once (`make test` runs `-n 2 --dist loadgroup`). pytest 9.2 moved the node id that
pytest-xdist 3.8 rewrites to name a group: the marker was set and ignored, both workers ran the
demo DAG (about 190 s each on 2 cores). This runs tests/conftest.py's own collection hook in a
scratch suite under two workers and checks where the demo's tests ran."""

import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

CONFTEST = f'''
import importlib.util, os, pytest
spec = importlib.util.spec_from_file_location("sonoflow_conftest", {str(TESTS / "conftest.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
pytest_collection_modifyitems = module.pytest_collection_modifyitems  # with its hookimpl options

@pytest.fixture(scope="session")
def demo_run():  # a cheap stand-in: which worker sets it up is what is checked
    return os.environ["PYTEST_XDIST_WORKER"]
'''

SUITE = '''
import os, time, pytest

def test_reads_demo_a(demo_run):
    assert demo_run == os.environ["PYTEST_XDIST_WORKER"]

@pytest.mark.parametrize("mode", ["full", "roi"])
def test_reads_demo_b(demo_run, mode):
    assert demo_run == os.environ["PYTEST_XDIST_WORKER"]

@pytest.mark.parametrize("n", range(6))
def test_independent(n):
    time.sleep(0.2)

def test_reads_demo_c(demo_run, tmp_path):
    assert demo_run == os.environ["PYTEST_XDIST_WORKER"]
'''


def test_demo_run_tests_share_one_worker_under_loadgroup(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_suite.py").write_text(SUITE)
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                             "--rootdir", str(tmp_path), str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    workers = {test: worker for worker, test in re.findall(r"\[(gw\d)\] \[\s*\d+%\] PASSED test_suite.py::(\S+)", output)}
    assert len(workers) == 10, output[-3000:]
    demo = {worker for test, worker in workers.items() if test.startswith("test_reads_demo")}
    assert len(demo) == 1, f"the demo run's tests were spread over {sorted(demo)}:\n{output[-2000:]}"
    assert set(workers.values()) == {"gw0", "gw1"}, "the independent tests still use both workers"
