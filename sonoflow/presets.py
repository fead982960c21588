"""Study presets: configuration overlays (package data, sonoflow/resources/presets/) that
reproduce the protocols of published studies (backbones, split scheme, input size, augmentation,
optimiser, schedule).

A preset is layered over config.yaml exactly as snakemake layers ``--configfile`` files (nested
mappings merge, everything else replaces), and the result must pass the workflow's config schema.
Its ``preset`` block describes the study: what it reported and where sonoflow writes each of
those, what the preset changed (e.g. patient-level instead of image-level splits) and what it
had to assume where the study was silent.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from sonoflow.config import CONFIG_SCHEMA, DEFAULT_CONFIG, PRESET_DIR, RESOURCES
from sonoflow.plan import apply_plan


class PresetError(ValueError):
    pass


def merge(base: Mapping, override: Mapping) -> dict:
    """Nested update, as snakemake merges config files: mappings merge, other values replace."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def preset_paths(folder: str | os.PathLike = PRESET_DIR) -> list[Path]:
    return sorted(Path(folder).glob("*.yaml"))


def load_yaml(path: str | os.PathLike) -> dict:
    with open(path) as handle:
        loaded = yaml.safe_load(handle) or {}
    if not isinstance(loaded, dict):
        raise PresetError(f"{path}: a preset is a mapping of config keys, not {type(loaded).__name__}")
    return loaded


def preset_config(path: str | os.PathLike, defaults: str | os.PathLike = DEFAULT_CONFIG) -> dict:
    """The configuration a run with this preset uses: config.yaml, then the preset over it."""
    return merge(load_yaml(defaults), load_yaml(path))


def preset_problems(config: Mapping, schema_path: str | os.PathLike = CONFIG_SCHEMA) -> list[str]:
    """Everything wrong with a merged preset configuration (empty when it is usable): the config
    schema, the preset block, and what the schema cannot see (each backbone's input size limits,
    an ROI input without segmentation, a test set that the split cannot have)."""
    import jsonschema

    from sonoflow.models import model_spec

    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = [f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
                for error in jsonschema.Draft202012Validator(schema).iter_errors(config)]
    if problems:
        return problems
    preset = config.get("preset")
    if not preset:
        return ["no `preset` block: say which study this reproduces and how"]
    config = copy.deepcopy(dict(config))
    apply_plan(config, demo=False)  # the sizes a run on the user's data would use
    train = config["train"]
    for name in train["models"]:
        spec = model_spec(name)
        if train["input_size"] < spec.min_input:
            problems.append(f"train.input_size {train['input_size']} is below {name}'s minimum {spec.min_input}")
        if name == "vit_b_16" and train["input_size"] % 16:
            problems.append(f"vit_b_16 needs train.input_size divisible by 16, not {train['input_size']}")
    if set(train["inputs"]) & {"roi", "both"} and not config["segment"]["enabled"]:
        problems.append("train.inputs asks for ROI crops but segment.enabled is false")
    if train["input_size"] > config["ingest"]["size"]:
        problems.append(f"train.input_size {train['input_size']} is above ingest.size {config['ingest']['size']}: "
                        "frames would be upsampled")
    unknown = sorted(set(config["evaluate"]["positive"]) - set(config["labels"]))
    if unknown:
        problems.append(f"evaluate.positive {unknown} are not among the labels {config['labels']}")
    for output in (preset.get("reported") or {}).values():
        if not str(output).startswith("results/"):
            problems.append(f"preset.reported: {output!r} is not a results/ path")
    return problems


def check_preset(path: str | os.PathLike) -> dict:
    """The merged configuration of a preset, or PresetError naming every problem."""
    config = preset_config(path)
    problems = preset_problems(config)
    if problems:
        raise PresetError(f"preset {Path(path).name}:\n  " + "\n  ".join(problems))
    return config


def run_warnings(config: Mapping) -> list[str]:
    """What a run with a preset should be told about the data it was given (not errors: the
    demo, for one, has other classes than any study)."""
    preset = config.get("preset") or {}
    warnings = []
    classes = preset.get("classes")
    if classes and classes != len(config["labels"]):
        warnings.append(f"preset {preset.get('name')}: the study had {classes} classes; this run has "
                        f"{len(config['labels'])} ({', '.join(config['labels'])})")
    if preset.get("pretrained") == "imagenet":
        # A model initialised from another run (chained transfer) got its ImageNet start there.
        started = {**(config["train"].get("weights") or {}), **(config["train"].get("init_from") or {})}
        missing = [model for model in config["train"]["models"] if not started.get(model)]
        if missing:
            warnings.append(f"preset {preset.get('name')}: the study started from ImageNet weights; none are set for "
                            f"{', '.join(missing)}, which therefore train from random initialisation (set "
                            "train.weights.MODEL to a local torchvision weights file)")
    return warnings


def run_notes(config: Mapping) -> str:
    """One log line at the start of a preset run: the study, and what the preset changed."""
    preset = config.get("preset") or {}
    if not preset:
        return ""
    changed = "; ".join(preset.get("changed") or [])
    return f"preset {preset.get('name')} ({preset.get('study')}): {preset.get('protocol')}. Changed: {changed}"


def _cell(value) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    return str(value).replace("|", "/").replace("\n", " ")


def shown_path(path: str | os.PathLike) -> str:
    """A packaged preset from the package's name on (sonoflow/resources/presets/NAME.yaml: in a
    checkout, the path the README's commands use); any other path as given."""
    path, package = Path(path), RESOURCES.parent
    return str(package.name / path.relative_to(package)) if path.is_absolute() and path.is_relative_to(package) else str(path)


def preset_table(paths: Sequence[str | os.PathLike] | None = None) -> str:
    """The README's table of studies and presets, as Markdown, from the presets themselves."""
    rows = ["| study | data | protocol (as reported) | what it reported → sonoflow output | preset "
            "| changed for honest evaluation |",
            "|---|---|---|---|---|---|"]
    for path in paths or preset_paths():
        preset = load_yaml(path)["preset"]
        reported = "; ".join(f"{what} → `{where}`" for what, where in (preset.get("reported") or {}).items())
        rows.append(" | ".join(["", _cell(preset["study"]), _cell(preset["data"]), _cell(preset["protocol"]), reported,
                                f"`{shown_path(path)}`",
                                _cell(preset.get("changed") or "—"), ""]).strip())
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m sonoflow.presets: check every preset, print the README table
    import sys

    failed = False
    for preset_path in preset_paths():
        try:
            check_preset(preset_path)
        except PresetError as error:
            failed = True
            print(error, file=sys.stderr)
    print(preset_table())
    sys.exit(1 if failed else 0)
