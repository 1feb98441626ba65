"""The options of a training job (:class:`TrainConfig`), stored in ``run.json`` under ``train``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ecg_core.core.config import FrozenConfig
from ecg_core.core.errors import ConfigError
from ecg_core.imaging.preprocess import PreprocessConfig

__all__ = ["BALANCE_MODES", "SPLIT_MODES", "STRATEGIES", "TrainConfig"]

BALANCE_MODES = ("oversample", "class_weights", "none")
STRATEGIES = ("default", "mirrored")
SPLIT_MODES = ("group", "file")  # "file" is the leaky random file-level split, for the leakage demonstration only


@dataclass(frozen=True)
class TrainConfig(FrozenConfig):
    """Everything a training job needs; stored in ``run.json`` under ``train``."""

    data_dir: str
    arch: str = "custom_cnn"
    preset: str = "cardiac-4"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    val_frac: float = 0.15
    test_frac: float = 0.15
    kfold: int = 0
    split_by: str = "group"
    dedupe: bool = True
    balance: str = "oversample"
    max_multiplier: int = 12
    augment: str = "light"
    patience: int = 8
    reduce_lr_patience: int = 3
    pretrained: bool = False
    trainable_top_n: int = 0
    bn_momentum: float = 0.9
    label_smoothing: float = 0.0
    strategy: str = "default"
    mixed_precision: bool = False
    steps_per_epoch: int = 0
    #: images per forward/backward pass; 0 = automatic (the whole batch unless its activations exceed
    #: ACTIVATION_BUDGET_MIB, then the largest divisor of batch_size that fits, the gradients of
    #: batch_size / micro_batch passes averaged before each update: same effective batch, less memory)
    micro_batch: int = 0

    HASH_LENGTH = 12  # config_hash(): a short digest of the options

    def __post_init__(self) -> None:
        if not self.data_dir:
            raise ConfigError("data_dir is empty; pass the dataset folder (one sub-folder per class)")
        if self.balance not in BALANCE_MODES:
            raise ConfigError(f"balance must be one of {', '.join(BALANCE_MODES)}; got {self.balance!r}")
        if self.split_by not in SPLIT_MODES:
            raise ConfigError(f"split_by must be one of {', '.join(SPLIT_MODES)}; got {self.split_by!r}")
        if self.split_by == "file" and self.dedupe:
            raise ConfigError("split_by='file' (the leaky demonstration split) needs dedupe=False")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}")
        for name, lo in (("epochs", 1), ("batch_size", 1), ("patience", 1), ("reduce_lr_patience", 1),
                         ("max_multiplier", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < lo:
                raise ConfigError(f"{name} must be an integer >= {lo}; got {v!r}")
        if isinstance(self.micro_batch, bool) or not isinstance(self.micro_batch, int) or self.micro_batch < 0 or (
                self.micro_batch and self.batch_size % self.micro_batch):
            raise ConfigError(f"micro_batch must be 0 (automatic) or a divisor of batch_size={self.batch_size}; "
                              f"got {self.micro_batch!r}")
        if self.kfold not in (0, 1) and not 2 <= self.kfold <= 20:
            raise ConfigError(f"kfold must be 0 (off) or 2..20; got {self.kfold!r}")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr must be in (0, 1); got {self.lr!r}")
        if not isinstance(self.preprocess, PreprocessConfig):
            raise ConfigError("preprocess must be a PreprocessConfig")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict` output (``run.json``'s ``train``); the nested ``preprocess`` may be a dict."""
        if isinstance(d, dict):
            cls.check_keys(d)  # unknown TrainConfig keys are refused before the nested config is read
            if isinstance(d.get("preprocess"), dict):
                d = {**d, "preprocess": PreprocessConfig.from_dict(d["preprocess"])}
        return super().from_dict(d)
