"""A run killed hard mid-ingest, recovered by following the README's troubleshooting steps word
for word: the outputs equal a clean run's and no temporary file or folder is left."""

import os
import shlex
import signal
import subprocess
import time

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, TINY_CONFIG, run_snakemake
from sonoflow.config import DEFAULT_CONFIG
from sonoflow.presets import merge

pytestmark = pytest.mark.workflow
TARGET = "results/frames.csv"  # demo data and ingest: where the kill lands


def readme_recovery_commands() -> list[list[str]]:
    """The commands of the README's "After a crash" block, without the program name."""
    section = (REPO / "README.md").read_text().split("### After a crash", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert commands and all(command[0] == ".venv/bin/snakemake" for command in commands), block
    return [command[1:] for command in commands]


def files_under(folder):
    """Relative path -> bytes of every file under ``folder``, logs and job benchmarks aside (they hold times)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not {"logs", "benchmarks"} & set(p.relative_to(folder).parts)}


def test_killed_run_recovers_with_the_readme_steps_and_equals_a_clean_run(tmp_path):
    commands = readme_recovery_commands()
    assert [command[0] for command in commands] == ["--unlock", "--cores"]

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    configfile = crashed / "tiny_config.yaml"
    configfile.write_text(yaml.safe_dump(merge(TINY_CONFIG, {})))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(crashed), "--configfile", str(DEFAULT_CONFIG),
           str(configfile), "--cores", "2", "--workflow-profile", str(REPO / "workflow/profiles/default"), TARGET]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline, temp = time.time() + 600, []
    while time.time() < deadline and proc.poll() is None:
        temp = [p for p in crashed.glob("results/ingest/shard_*/.previews.*") if any(p.rglob("*.png"))]
        if temp:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its jobs: a power cut, an OOM kill
    proc.wait()
    assert temp, "the run ended before ingest wrote a preview: nothing was killed mid-ingest"
    assert list(crashed.glob("results/ingest/shard_*/.previews.*")), "the kill left a temp folder"
    assert not (crashed / TARGET).exists()

    # Why the README's first step is needed: the dead run's lock stops a plain rerun.
    plain = run_snakemake(crashed, TARGET, check=False)
    assert plain.returncode != 0 and "cannot be locked" in plain.stdout + plain.stderr

    for args in commands:  # word for word, with the crashed run's options and target
        run_snakemake(crashed, *args, TARGET)

    clean = tmp_path / "clean"
    clean.mkdir()
    run_snakemake(clean, TARGET)
    recovered, reference = files_under(crashed / "results"), files_under(clean / "results")
    assert sorted(recovered) == sorted(reference)
    assert [name for name in reference if recovered[name] != reference[name]] == []
    # Hidden names are temporary files and folders, but for snakemake's marker of a folder output.
    hidden = [str(p.relative_to(crashed)) for p in (crashed / "results").rglob(".*") if p.name != ".snakemake_timestamp"]
    assert hidden == [], "temporary files or folders left"
