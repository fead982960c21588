import re
from pathlib import Path

import pytest
import yaml

from sonoflow.presets import (PRESET_DIR, PresetError, check_preset, merge, preset_config, preset_paths, preset_problems,
                              preset_table, run_notes, run_warnings)

PRESETS = preset_paths()
STUDIES = {"ovarian, ResNet50 + Grad-CAM", "ovarian, six CNNs", "breast, six models", "liver, ResNet18",
           "breast, two-stage transfer"}


def test_every_study_of_the_design_card_has_a_preset():
    studies = {yaml.safe_load(path.read_text())["preset"]["study"] for path in PRESETS}
    assert STUDIES <= studies, STUDIES - studies


@pytest.mark.parametrize("path", PRESETS, ids=lambda path: path.stem)
def test_preset_validates_against_the_config_schema_and_its_own_checks(path):
    config = check_preset(path)
    preset = config["preset"]
    assert preset["name"] == path.stem
    assert preset["reported"] and preset["changed"], "a preset says what the study reported and what it changed"
    # Every preset is leak-free by construction: patients are the unit of every split.
    assert config["split"]["folds"] >= 1 and 0 <= config["split"]["test_fraction"] < 1


@pytest.mark.parametrize("name, key, expected", [
    ("ovarian_resnet50_gradcam", "split", {"test_fraction": 0.0, "folds": 5}),
    ("ovarian_six_cnns", "split", {"test_fraction": 0.2, "folds": 1, "val_fraction": 0.125}),  # 7:1:2
    ("breast_six_models", "split", {"test_fraction": 0.3, "folds": 1}),  # 7:3
    ("liver_resnet18_roi", "split", {"test_fraction": 0.2, "folds": 1}),  # 80/20
    ("liver_resnet18_roi", "train", {"optimizer": "sgd", "lr": 0.0001, "epochs": 100, "inputs": ["roi"],
                                     "models": ["resnet18", "alexnet", "vgg16"]}),
    ("liver_resnet18_roi", "denoise", {"method": "gaussian", "gaussian": {"ksize": 5, "sigma": 1.0}}),
    ("breast_two_stage_transfer", "train", {"optimizer": "sgd", "batch_size": 16, "lr": 0.0001, "epochs": 200,
                                            "patience": 10, "input_size": 256,
                                            "models": ["vgg16", "inception_v3", "resnet50"]}),
    ("ovarian_six_cnns", "train", {"models": ["vgg19_bn", "densenet121", "swin_t", "convnext_tiny", "mobilenet_v2",
                                              "resnet101"]}),
    ("breast_six_models", "train", {"models": ["vgg16", "googlenet", "alexnet", "resnet50", "vit_b_16", "densenet121"]}),
])
def test_presets_carry_the_protocol_of_their_study(name, key, expected):
    config = preset_config(PRESET_DIR / f"{name}.yaml")
    assert {k: config[key][k] for k in expected} == expected


def test_two_stage_transfer_starts_each_network_from_its_stage_one_checkpoint():
    stage_two = preset_config(PRESET_DIR / "breast_two_stage_transfer.yaml")
    stage_one = preset_config(PRESET_DIR / "breast_transfer_mammography.yaml")
    assert stage_one["train"]["models"] == stage_two["train"]["models"]
    for model in stage_two["train"]["models"]:
        assert stage_two["train"]["init_from"][model] == f"../mammography/results/train/{model}/full/fold_0/best.pt"
    assert stage_one["split"]["folds"] == 1  # one fold_0 checkpoint per network


@pytest.mark.parametrize("change, message", [
    ({"train": {"inputs": ["roi"]}, "segment": {"enabled": False}}, "ROI crops but segment.enabled is false"),
    ({"train": {"models": ["vit_b_16"], "input_size": 200}}, "divisible by 16"),
    ({"train": {"models": ["inception_v3"], "input_size": 64}, "ingest": {"size": 64}}, "below inception_v3's minimum 75"),
    ({"train": {"input_size": 256}, "ingest": {"size": 128}}, "above ingest.size"),
    ({"train": {"optimiser": "sgd"}}, "Additional properties are not allowed"),
    ({"split": {"folds": 0}}, "split.folds"),
    ({"evaluate": {"positive": ["cancer"]}}, "not among the labels"),
    ({"preset": {"reported": {"AUC": "/tmp/auc.csv"}}}, "not a results/ path"),
])
def test_broken_presets_are_refused_with_the_reason(tmp_path, change, message):
    broken = merge(yaml.safe_load((PRESET_DIR / "ovarian_six_cnns.yaml").read_text()), change)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(PresetError, match=message.replace("(", r"\(")):
        check_preset(path)


def test_a_config_without_a_preset_block_is_not_a_preset(tmp_path):
    config = preset_config(PRESET_DIR / "ovarian_six_cnns.yaml")
    config.pop("preset")
    assert preset_problems(config) == ["no `preset` block: say which study this reproduces and how"]


def test_run_warns_about_class_count_and_missing_imagenet_weights():
    config = preset_config(PRESET_DIR / "ovarian_resnet50_gradcam.yaml")  # 5 classes; the demo has 4
    warnings = run_warnings(config)
    assert any("the study had 5 classes; this run has 4" in w for w in warnings)
    assert any("none are set for resnet50" in w for w in warnings)
    with_weights = merge(config, {"labels": list("abcde"), "train": {"weights": {"resnet50": "/w/resnet50.pth"}}})
    assert run_warnings(with_weights) == []
    assert "Changed: folds are grouped by patient" in run_notes(config)
    # Stage 2 of the transfer study starts from stage 1's checkpoints, not from random weights.
    stage_two = preset_config(PRESET_DIR / "breast_two_stage_transfer.yaml")
    assert not any("random initialisation" in w for w in run_warnings(stage_two))
    assert run_notes({"labels": ["a", "b"]}) == ""


def test_readme_table_lists_every_preset_and_is_the_one_in_the_readme():
    table = preset_table()
    for path in PRESETS:
        assert f"`sonoflow/resources/presets/{path.name}`" in table
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert table in readme, "README's preset table is stale: paste `python -m sonoflow.presets` output"


def test_every_documented_configfile_exists():
    """The `--configfile` paths that README, the presets' headers and the benchmark configs give
    (run from the checkout) name files that are there; NAME and my_study.yaml are placeholders."""
    repo = Path(__file__).resolve().parents[2]
    documents = [repo / "README.md", *PRESETS, *sorted((repo / "benchmarks/configs").glob("*.yaml"))]
    named = {path for document in documents
             for group in re.findall(r"--configfile((?:[ \t]+[^\s`]+\.yaml)+)", document.read_text())
             for path in group.split()}
    assert "sonoflow/resources/config.yaml" in named and "sonoflow/resources/presets/NAME.yaml" in named
    missing = [path for path in sorted(named - {"sonoflow/resources/presets/NAME.yaml", "my_study.yaml"})
               if not (repo / path).is_file()]
    assert not missing


@pytest.mark.parametrize("path", PRESETS, ids=lambda path: path.stem)
def test_speckle_filter_and_roi_input_only_where_the_study_used_them(path):
    config = preset_config(path)
    liver = path.stem == "liver_resnet18_roi"  # the one study with Gaussian 5x5 and a U-Net ROI
    assert config["denoise"]["method"] == ("gaussian" if liver else "none")
    assert config["segment"]["enabled"] == liver and (config["train"]["inputs"] == ["roi"]) == liver
