"""A misspelt config key stops snakemake at once, in one line naming the key and the closest known one."""

import os
import subprocess

import pytest

from conftest import REPO, SNAKEMAKE

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize("setting, line", [
    ("sample=/path/my_sheet.csv", "unknown config key sample (did you mean samples?)"),
    ('trian={"epochs": 3}', "unknown config key trian (did you mean train?)"),
    ('train={"epoch": 3}', "unknown config key train.epoch (did you mean train.epochs?)"),
])
def test_misspelt_key_fails_in_one_line_with_a_suggestion(setting, line, tmp_path):
    result = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", "--config", setting],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert [text for text in output.splitlines() if "unknown config key" in text] == [line]
    assert len(output.splitlines()) < 10, output  # not the schema printed
    assert not (tmp_path / "results").exists()
