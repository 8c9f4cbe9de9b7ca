"""Options of the distillation methods, light on purpose (no torch): the CLI builds its flags from them and
suites validate their ``distill:`` entries against them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lcm_bench.core.errors import UserError


@dataclass(frozen=True)
class DistillRun:
    """Where a distillation writes and how far it goes: the student's folder ``out``, its resumable ``checkpoint``
    (beside ``out`` unless given), ``stop_at`` steps of those its config plans (a snapshot along one run), the loss
    logged every ``log_every`` steps, a progress bar where ``progress``."""

    out: Path
    checkpoint: Path | None = None
    stop_at: int | None = None
    log_every: int = 50
    progress: bool = True

    @property
    def checkpoint_file(self) -> Path:
        return self.checkpoint or self.out.parent / f".{self.out.name}-checkpoint.pt"


@dataclass(frozen=True)
class StudentConfig:
    """Options every distillation method shares: batch, learning rate, the range of paper-convention guidance w
    drawn per sample, the guidance-embedding width, the training-set size and the seed."""

    batch: int = 64
    lr: float = 2e-4
    w_min: float = 2.0
    w_max: float = 14.0
    w_embedding_dim: int = 256
    n_train: int = 40000
    seed: int = 0

    def validate(self) -> None:
        if not 0 <= self.w_min <= self.w_max:
            raise UserError(f"--w-min/--w-max: need 0 <= w_min <= w_max, got {self.w_min}, {self.w_max}")


@dataclass(frozen=True)
class LCDConfig(StudentConfig):
    """The paper's defaults where it states them (k = 20, DDIM solver, w in [2, 14] i.e. paper w, EMA 0.95, Huber)."""

    steps: int = 2400
    skip: int = 20
    solver: str = "ddim"
    ema: float = 0.95
    loss: str = "huber"
    huber_c: float = 0.001
    timestep_scaling: float = 10.0
    lora_rank: int = 16
    caption_dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        from lcm_bench.train.distill.solvers import SOLVERS

        if self.solver not in SOLVERS:
            raise UserError(f"--solver: '{self.solver}' is not one of {SOLVERS.in_order()}")
        if self.loss not in ("huber", "l2"):
            raise UserError(f"--loss: '{self.loss}' is not one of ['huber', 'l2']")
        if not 1 <= self.skip <= 500:
            raise UserError(f"--skip: {self.skip} is outside 1..500 (timesteps of the 1000-step schedule)")
        if not 0 <= self.ema < 1:
            raise UserError(f"--ema: {self.ema} is outside [0, 1)")

    @property
    def grid_size(self) -> int:
        """N, the number of skipping-step timesteps (LCMScheduler's original_inference_steps)."""
        return 1000 // self.skip


@dataclass(frozen=True)
class GuidedConfig(StudentConfig):
    stage1_steps: int = 800
    stage2_steps: int = 300
    start_steps: int = 32
    keep: tuple[int, ...] = (8, 4, 2, 1)

    def validate(self) -> None:
        super().validate()
        if self.start_steps < 2 or self.start_steps & (self.start_steps - 1):
            raise UserError(f"--start-steps: {self.start_steps} is not a power of two >= 2")
        if not set(self.keep) <= set(self.halvings()):
            raise UserError(f"--keep: {list(self.keep)} must be among the halvings {self.halvings()}")

    def halvings(self) -> list[int]:
        return [self.start_steps >> i for i in range(1, self.start_steps.bit_length())]
