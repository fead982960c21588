"""The conda environment files build where snakemake puts them and provide what their rules import.

Conda channels cannot be reached from the test machines, so this is a static check: each rule's
`conda:` file and `script:` are read from workflow/rules/*.smk (`use rule ... with:` inherits
both), the script's third-party imports are found with sonoflow.stack (through the sonoflow
library, imports inside functions too), mapped to their distributions, and looked up in the file.
"""

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sonoflow.stack import distribution_of, imports_of

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "workflow" / "rules"
# conda-forge names of the distributions whose conda package is named otherwise
CONDA_NAMES = {"opencv-python-headless": "opencv", "torch": "pytorch"}


def parse_rules() -> dict[str, dict]:
    """Rule name -> {"conda": path, "script": path} (absolute; None where the rule has none)."""
    rules, order = {}, []
    for path in sorted(RULES.glob("*.smk")):
        lines = path.read_text().splitlines()
        current = None
        for index, line in enumerate(lines):
            plain = re.match(r"^(?:rule|checkpoint) (\w+):", line)
            used = re.match(r"^use rule (\w+) as (\w+)(?: with:)?", line)
            if plain or used:
                current = (plain or used).group(1) if plain else used.group(2)
                rules[current] = {"conda": None, "script": None, "base": used.group(1) if used else None, "file": path}
                order.append(current)
            elif line and not line[0].isspace():
                current = None
            elif current and line.strip() in ("conda:", "script:"):
                value = lines[index + 1].strip().strip('",')
                rules[current][line.strip()[:-1]] = (path.parent / value).resolve()
    for name in order:  # `use rule A as B with:` keeps A's environment and script unless it sets them
        base = rules[name].pop("base")
        if base:
            for key in ("conda", "script"):
                rules[name][key] = rules[name][key] or rules[base][key]
    return rules


def env_packages(path: Path) -> tuple[set[str], dict[str, Requirement]]:
    """Canonical names of the file's conda packages, and its pip requirements by canonical name."""
    spec = yaml.safe_load(path.read_text())
    conda, pip = set(), {}
    for item in spec["dependencies"]:
        if isinstance(item, dict):
            for line in item.get("pip", []):
                if line.startswith("-"):  # an option such as -e PATH: refused by the location test
                    continue
                requirement = Requirement(line)
                pip[canonicalize_name(requirement.name)] = requirement
        else:
            conda.add(canonicalize_name(re.split(r"[=<>! ]", item)[0]))
    return conda, pip


RULE_TABLE = parse_rules()
SCRIPTED = sorted(name for name, rule in RULE_TABLE.items() if rule["script"])


def test_rules_are_found_and_every_scripted_rule_has_an_environment():
    assert {"ingest", "train", "evaluate", "cam", "manifest", "predict_ingest", "predict_segment"} <= set(SCRIPTED)
    assert [name for name in SCRIPTED if not RULE_TABLE[name]["conda"]] == []
    assert all(RULE_TABLE[name]["script"].is_file() for name in SCRIPTED)


@pytest.mark.parametrize("rule", SCRIPTED)
def test_every_import_of_a_rule_is_provided_by_its_environment(rule):
    env = RULE_TABLE[rule]["conda"]
    conda, pip = env_packages(env)
    missing = []
    for module in sorted(imports_of([RULE_TABLE[rule]["script"]])):
        name = canonicalize_name(distribution_of(module))
        if name not in pip and name not in conda and canonicalize_name(CONDA_NAMES.get(name, name)) not in conda:
            missing.append(f"{module} ({name})")
    assert not missing, f"{env.name} lacks what rule {rule} imports: {missing}"


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda path: path.name)
def test_environment_files_do_not_depend_on_where_snakemake_copies_them(env):
    text = env.read_text()
    conda, pip = env_packages(env)
    # snakemake builds a copy under .snakemake/conda/: a relative path (-e .., file:..) points there
    for line in text.splitlines():
        entry = line.split("#")[0].strip().lstrip("- ").strip()
        assert not re.match(r"^(-e|--editable|-r|\.|/|file:)", entry), f"{env.name}: {line.strip()}"
    # the rules its header names are exactly those that use it, and they exist
    named = re.search(r"^# Rules: (.*(?:\n#   .*)*)", text, re.MULTILINE)
    assert named, f"{env.name} names its rules in a '# Rules:' line"
    listed = {name.strip() for name in named.group(1).replace("#", " ").replace("\n", ",").split(",") if name.strip()}
    users = {name for name in SCRIPTED if RULE_TABLE[name]["conda"] == env.resolve()}
    assert listed == users, (listed - users, users - listed)


def test_pip_pins_of_the_environments_are_pyprojects():
    import tomllib

    project = {canonicalize_name(Requirement(line).name): Requirement(line).specifier
               for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    for env in (REPO / "envs").glob("*.yaml"):
        for name, requirement in env_packages(env)[1].items():
            assert name in project and requirement.specifier == project[name], (env.name, name)
