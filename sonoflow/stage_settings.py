"""The settings of the training, segmentation, pretraining and evaluation stages, apart from their code.

Each class is its stage's settings (``sonoflow.train``, ``.segment``, ``.pretrain`` and ``.evaluate``
use them and re-export them); they live here, in a module that imports neither torch nor
scikit-learn nor SciPy, because the workflow builds every rule's params from them when Snakemake
parses it, and Snakemake parses the workflow at every start: a dry run, every local run, and on
SLURM twice per job (once in the job, once more in its ``srun`` step). Importing torch and
scikit-learn there took about 3 of the 4.8 s of each parse (tests/workflow/test_workflow_parse.py keeps the
parse free of them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Mapping

from sonoflow.settings import Settings

# Frame -> unit poolings (sonoflow.metrics.aggregate); the first listed in evaluate.pooling is the headline's.
POOLINGS = ("mean", "topk", "attention")
CALIBRATIONS = ("temperature", "none")


@dataclass(frozen=True)
class AugmentSettings(Settings):
    SECTION = "augment"

    hflip: float = 0.5  # probability of a horizontal flip
    rotate: float = 10.0  # max degrees either way
    translate: float = 0.05  # max shift, as a fraction of the side
    scale: float = 0.1  # max zoom in or out, as a fraction
    brightness: float = 0.1  # max additive change, in units of the [0, 1] intensity range
    contrast: float = 0.1  # max relative change of contrast
    # Ultrasound's own variation (0 = off): what another gain knob, time-gain compensation, depth
    # setting or probe would change in the same anatomy.
    speckle: float = 0.0  # multiplicative noise of up to this std, at speckle scale (2x2 px cells)
    gain: float = 0.0  # max relative change of overall gain (multiplicative, unlike brightness)
    tgc: float = 0.0  # max relative gain change at the top and bottom (time-gain compensation ramp)
    depth_crop: float = 0.0  # max share of the depth cut off (the top part shown larger, as a shallower depth)

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def without_geometry(self) -> AugmentSettings:
        """The same augmentation without rotation, shift and zoom (the flip, intensity and
        ultrasound's own changes kept)."""
        return replace(self, rotate=0.0, translate=0.0, scale=0.0)


@dataclass(frozen=True)
class TrainSettings(Settings):
    SECTION = "train"
    # Keys of `train` that are not one job's settings: the runs (models, inputs) and each job's
    # resources (gpu, threads); weights and init_from are per model there, one value here.
    NOT_SETTINGS = frozenset({"models", "inputs", "gpu", "threads"})
    NESTED = {"augment": AugmentSettings}

    model: str = "resnet18"
    input: str = "full"  # full | roi | both (sonoflow.dataset.INPUT_CHANNELS)
    weights: str | None = None  # local pretrained weights file (never downloaded)
    init_from: str | None = None  # chained transfer: another run's checkpoint
    input_size: int = 128
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"  # cosine | none
    patience: int = 5  # early stopping: epochs without a better validation `monitor`
    monitor: str = "loss"  # what picks the kept epoch: loss (validation loss) | auc (validation AUC, macro over classes)
    class_weighting: str = "balanced"  # balanced (loss weights) | sampler | none
    balance_items: bool = False  # every item (clip, image) weighs the same; its frames share its weight
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # mixed precision on CUDA
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    # augment's rotation, shift and zoom: on, off, or auto (rule plan decides from the data: off when
    # most items are clips, whose frames already move with the probe; sonoflow.plan.plan_geometric).
    geometric: bool | str = True
    # The recipe beyond the loop (0 / empty = off; config.yaml switches them on).
    warmup_epochs: int = 0  # linear warm-up of the learning rate before the cosine schedule
    label_smoothing: float = 0.0  # training loss only; validation loss (early stopping) stays plain
    ema: float = 0.0  # decay of an exponential moving average of the weights (timm's ModelEmaV3, with warm-up)
    tta: tuple[str, ...] = ()  # test-time views averaged in the saved predictions and predict: hflip, shift

    @classmethod
    def params(cls, config: Mapping, model: str, input: str) -> dict:
        """Rule train's params for one (model, input): the `train` section without the keys that
        do not change what one job computes (so adding a model reruns no other), with this
        model's weights and init_from; ``from_config(params, model=model)`` reads them back."""
        per_run = cls.NOT_SETTINGS | {"weights", "init_from"}
        settings = {key: value for key, value in config.items() if key not in per_run}
        settings["weights"] = config.get("weights", {}).get(model)
        settings["init_from"] = config.get("init_from", {}).get(model)
        settings["input"] = input
        return settings

    # What decides a training's time per epoch, and the epochs: what the plan times (rule plan).
    TIMED = ("model", "input", "input_size", "batch_size", "augment", "ema", "epochs", "device", "amp")

    @classmethod
    def timed(cls, params: Mapping) -> dict:
        """The rule params (``params``) that the plan's timing depends on."""
        return {key: params[key] for key in cls.TIMED if key in params}

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def training_augment(self) -> AugmentSettings:
        """``augment`` as training draws it: without rotation, shift and zoom when ``geometric`` is off."""
        if self.geometric is True:
            return self.augment
        if self.geometric is False:
            return self.augment.without_geometry()
        raise ValueError(f"train.geometric is {self.geometric!r} where a model trains: it must be true or false "
                         "(rule plan resolves auto into results/plan.json)")


KEEP_MODES = ("largest", "all")
ROI_MODES = ("fixed", "fit")


@dataclass(frozen=True)
class SegmentSettings(Settings):
    SECTION = "segment"
    # Keys of `segment` that are not the U-Net's settings: whether and how often it runs, and
    # its jobs' resources. Not in the rule's params, so changing them retrains no U-Net.
    NOT_SETTINGS = frozenset({"enabled", "per_fold", "gpu", "threads", "predict_threads"})
    NESTED = {"augment": AugmentSettings}

    encoder: str = "resnet18"  # any segmentation-models-pytorch encoder, e.g. resnet34, tu-efficientnet_lite0
    weights: str | None = None  # local encoder weights (torchvision/timm state dict); never downloaded
    input_size: int = 128  # the U-Net sees frames at this size (a multiple of 2 ** encoder_depth)
    encoder_depth: int = 5  # encoder stages (3-5); fewer is lighter, and coarser context
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # one per encoder stage, deepest first
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    steps_per_epoch: int = 0  # batches per epoch; 0 = one pass (small mask sets need more steps)
    patience: int = 6  # early stopping: epochs without a lower validation loss
    min_delta: float = 0.0  # ... lower by more than this (absolute), else it does not count as better
    val_fraction: float = 0.15  # share of the usable masked patients held out for early stopping
    threshold: float = 0.5  # probability above which a pixel is lesion
    min_area: float = 0.002  # components smaller than this share of the frame are noise
    keep: str = "largest"  # largest | all (every component above min_area)
    margin: float = 0.15  # ROI margin on each side, as a share of the lesion box's longer side
    roi: str = "fixed"  # fixed: one crop size for every frame | fit: the lesion box, full frame without a lesion
    roi_scale: float | str = "auto"  # fixed crops' side, share of the frame side; auto: from the training masks
    # Where training lesions lie (centre y, x and their sd, shares of the frame side; from the
    # training masks, kept in the checkpoint): a frame without a lesion is cropped where the U-Net's
    # probability is highest *among places lesions occur*, so its crop shows what a lesion crop shows.
    roi_prior: tuple[float, float, float, float] | None = None
    seed: int = 42
    device: str = "auto"
    amp: bool = True
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder_channels", tuple(int(c) for c in self.decoder_channels))
        if not 3 <= self.encoder_depth <= 5:
            raise ValueError(f"segment encoder_depth must be 3, 4 or 5, got {self.encoder_depth}")
        if len(self.decoder_channels) != self.encoder_depth:
            raise ValueError(f"segment decoder_channels needs one entry per encoder stage ({self.encoder_depth}), "
                             f"got {list(self.decoder_channels)}")
        if self.input_size % 2**self.encoder_depth:
            raise ValueError(f"segment input_size must be a multiple of {2 ** self.encoder_depth} (U-Net depth "
                             f"{self.encoder_depth}), got {self.input_size}")
        if self.min_delta < 0:
            raise ValueError(f"segment min_delta must be >= 0, got {self.min_delta}")
        if self.keep not in KEEP_MODES:
            raise ValueError(f"segment keep must be one of {KEEP_MODES}, got {self.keep!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"segment val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"segment threshold must be in (0, 1), got {self.threshold}")
        if self.roi not in ROI_MODES:
            raise ValueError(f"segment roi must be one of {ROI_MODES}, got {self.roi!r}")
        if self.roi_scale != "auto" and not (isinstance(self.roi_scale, (int, float)) and 0 < self.roi_scale <= 1):
            raise ValueError(f"segment roi_scale must be 'auto' or in (0, 1], got {self.roi_scale!r}")
        if self.roi_prior is not None:
            object.__setattr__(self, "roi_prior", tuple(float(v) for v in self.roi_prior))

    @classmethod
    def params(cls, config: Mapping) -> dict:
        """Rule train_segmenter's params: the `segment` section less NOT_SETTINGS; a decoder that
        does not match the encoder's depth is an error now, before any job runs."""
        depth, channels = config.get("encoder_depth", 5), config.get("decoder_channels")
        if channels is not None and len(channels) != depth:
            raise ValueError(f"segment.decoder_channels needs one entry per encoder stage (encoder_depth {depth}), "
                             f"got {channels}")
        return super().params(config)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def architecture(self) -> dict:
        """The U-Net's shape, as ``build_unet`` takes it."""
        return {"depth": self.encoder_depth, "decoder_channels": self.decoder_channels}


STARTS = ("weights", "random")
STRONG = AugmentSettings(hflip=0.5, rotate=15.0, translate=0.1, scale=0.3, brightness=0.3, contrast=0.3, speckle=0.3,
                         gain=0.3, tgc=0.3, depth_crop=0.3)


@dataclass(frozen=True)
class PretrainSettings(Settings):
    SECTION = "pretrain"
    NOT_SETTINGS = frozenset({"enabled", "gpu", "threads"})
    NESTED = {"augment": AugmentSettings}

    start: str = "weights"  # weights: the model's train.weights (ImageNet where packaged) | random
    epochs: int = 30
    batch_size: int = 64  # frames per batch (two views each: 2 x batch_size images)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    scheduler: str = "cosine"
    temperature: float = 0.2  # of the NT-Xent loss
    projection: int = 128  # output width of the projection head
    patience: int = 10  # epochs without a lower validation loss before stopping
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    augment: AugmentSettings = field(default_factory=lambda: STRONG)

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise ValueError(f"pretrain.start must be one of {', '.join(STARTS)}, got {self.start!r}")
        if self.batch_size < 2 or self.epochs < 1 or self.temperature <= 0:
            raise ValueError("pretrain: batch_size >= 2, epochs >= 1 and temperature > 0 are needed")


@dataclass(frozen=True)
class AttentionSettings(Settings):
    """The attention pooling's network (sonoflow.attention), trained per fold by rule attend."""

    SECTION = "evaluate.attention"

    hidden: int = 128  # width of the gated attention's two branches
    dropout: float = 0.25  # on the embeddings, while training
    epochs: int = 300  # full-batch steps at most
    patience: int = 30  # steps without a lower validation unit loss before stopping
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.epochs < 1 or self.patience < 1:
            raise ValueError("evaluate.attention: hidden, epochs and patience must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"evaluate.attention.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class EvaluateSettings(Settings):
    SECTION = "evaluate"
    # The readers' calls are the rule readers' input, not a setting of the scores: changing
    # them reruns no evaluation.
    NOT_SETTINGS = frozenset({"readers"})
    NESTED = {"attention": AttentionSettings}

    positive: tuple[str, ...] = ()  # classes of the binary question (e.g. malignant); empty = multi-class
    n_boot: int = 2000  # bootstrap resamples of patients for the confidence intervals
    level: float = 0.95
    seed: int = 0
    calibration_bins: int = 10
    unit: str = "auto"  # auto | patient | item: what is labelled and scored beside the frames
    pooling: tuple[str, ...] = ("mean",)  # frame -> unit pooling; the first is the headline's
    topk: int = 3  # k of the top-k pooling
    attention: AttentionSettings = field(default_factory=AttentionSettings)  # the attention pooling's network
    calibration: str = "temperature"  # temperature (fitted on the validation folds) | none

    def __post_init__(self) -> None:
        if not self.pooling or any(p not in POOLINGS for p in self.pooling):
            raise ValueError(f"evaluate.pooling must list some of {', '.join(POOLINGS)}, got {list(self.pooling)}")
        if self.pooling[0] == "attention":
            raise ValueError("evaluate.pooling: attention is compared beside the others but cannot come first (the "
                             "headline's and predict's pooling): predict does not apply the attention networks; "
                             "list it after mean or topk")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"evaluate.calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}")
        if self.topk < 1:
            raise ValueError(f"evaluate.topk must be >= 1, got {self.topk}")
