"""benchmarks/bench_parse.py: its commands run snakemake in-process, with and without the prelude."""

import importlib.util
import re
import subprocess

from conftest import load_benchmark


def test_the_launcher_runs_snakemake_and_the_heavy_prelude_names_installed_modules(tmp_path):
    bench = load_benchmark("bench_parse")
    result = subprocess.run(bench.command("", "--version"), capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0 and re.match(r"\d+\.\d+", result.stdout.strip()), result.stdout + result.stderr
    assert bench.timed(bench.command("", "--version"), tmp_path) > 0
    modules = [name.strip() for name in bench.HEAVY_IMPORTS.removeprefix("import ").split(",")]
    assert "torch" in modules and all(importlib.util.find_spec(name) for name in modules)
