"""The workflow's parse: `snakemake -n` of the demo DAG, against the same parse with the heavy
libraries imported first that every parse imported before `sonoflow/stage_settings.py` kept them
out of it (torch, scikit-learn's model_selection and metrics with SciPy: `python -X importtime` of
the dry run at d6ca485^ lists exactly these, and no torchvision).

Snakemake parses the Snakefile at every start: a dry run, a local run, and on SLURM twice per job
(the sbatch job, then its srun step), so the parse is on the critical path of every small job.
Three commands, interleaved so that machine noise falls on all of them alike, each repeated:

- ``bare``: ``snakemake --version`` (the interpreter and snakemake itself; the floor);
- ``parse``: ``snakemake -n`` of the demo DAG in an empty working folder, as the workflow is;
- ``heavy``: the same dry run in a process that imported the heavy libraries first.

Prints the median seconds of each and the ratio parse / heavy (below 1 is faster).
``tests/workflow/test_workflow_parse.py`` keeps the heavy imports out of the parse.

    python benchmarks/bench_parse.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY_IMPORTS = "import torch, sklearn.model_selection, sklearn.metrics, scipy.stats"
# The snakemake console script, run in-process after an optional prelude of imports.
LAUNCH = "import sys; {prelude}from snakemake.cli import main; sys.argv[0] = 'snakemake'; sys.exit(main())"


def command(prelude: str, *args: str) -> list[str]:
    return [sys.executable, "-c", LAUNCH.format(prelude=f"{prelude}; " if prelude else ""), *args]


def timed(cmd: list[str], workdir: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:])} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dry_run = ("-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n", "--cores", "1")
        variants = {"bare": command("", "--version"), "parse": command("", *dry_run),
                    "heavy": command(HEAVY_IMPORTS, *dry_run)}
        for cmd in variants.values():  # warm the page cache and snakemake's own caches once
            timed(cmd, workdir)
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, cmd in variants.items():
                seconds[name].append(timed(cmd, workdir))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"snakemake start-up and parse of the demo DAG, median of {args.repeats} interleaved runs "
          f"(load average {os.getloadavg()[0]:.2f})")
    print(f"{'variant':>8} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in seconds.items():
        print(f"{name:>8} {median[name]:>9.2f} {min(values):>7.2f} {max(values):>7.2f}")
    print(f"parse / heavy: {median['parse'] / median['heavy']:.2f}  "
          f"(the workflow's own parse beyond the bare start: {median['parse'] - median['bare']:.2f} s; "
          f"with the heavy imports: {median['heavy'] - median['bare']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
