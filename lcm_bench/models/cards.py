"""What a checkpoint's authors recommend, as data a method applies: sampler and its options, guidance scale and kind,
the step counts the checkpoint was trained for, its text length, each read from a named source (the model card or
the authors' code). A method naming only a registered checkpoint gets them; a field the suite writes overrides them;
records and reports say which settings came from the card and mark step counts the authors did not train for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AuthorsSettings:
    """``steps``: what a method runs when neither it nor the suite names steps; ``trained``: every step count the
    checkpoint was trained or published for (``steps`` when not given); ``options``: scheduler options as a suite
    writes them (``eta``, ``timesteps``, ``prediction_type`` ...); ``source``: where each value was read."""

    sampler: str
    steps: tuple[int, ...]
    guidance_scale: float
    source: str
    options: tuple[tuple[str, Any], ...] = ()
    timestep_spacing: str | None = None
    guidance: str = "auto"
    text_length: int | None = None
    trained: tuple[int, ...] = ()

    @property
    def trained_steps(self) -> tuple[int, ...]:
        return self.trained or self.steps

    def sampler_entry(self) -> dict[str, Any]:
        """The sampler as a suite would write it."""
        entry: dict[str, Any] = {
            "name": self.sampler,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.options},
        }
        if self.timestep_spacing:
            entry["timestep_spacing"] = self.timestep_spacing
        if self.guidance != "auto":
            entry["guidance"] = self.guidance
        return entry

    def describe(self) -> str:
        """One line for ``lcm-bench list``."""
        parts = [self.sampler]
        parts += [f"spacing {self.timestep_spacing}"] if self.timestep_spacing else []
        parts += [f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in self.options]
        parts += [f"guidance_scale {self.guidance_scale:g}"]
        parts += [f"guidance {self.guidance}"] if self.guidance != "auto" else []
        parts += [f"steps {'/'.join(map(str, self.steps))}"]
        if self.trained_steps != self.steps:
            parts.append(f"trained for {'/'.join(map(str, self.trained_steps))}")
        parts += [f"text_length {self.text_length}"] if self.text_length else []
        return ", ".join(parts)


HYPER_SD = "https://huggingface.co/ByteDance/Hyper-SD (model card)"
LIGHTNING = "https://huggingface.co/ByteDance/SDXL-Lightning (model card)"
TCD = "https://huggingface.co/h1t/TCD-SD15-LoRA (model card)"
DMD2 = "https://huggingface.co/tianweiy/DMD2 (model card)"
PCM = (
    "https://huggingface.co/spaces/radames/Phased-Consistency-Model-PCM app.py, the demo the authors' README links "
    "(TCDScheduler, trailing; the pipeline's default eta 0)"
)
LCM_LORA = "https://huggingface.co/latent-consistency/lcm-lora-sdv1-5 (model card: 2-8 steps, guidance 1-2)"


def lcm(steps: tuple[int, ...], scale: float, source: str, trained: tuple[int, ...] = ()) -> AuthorsSettings:
    """Multistep consistency sampling (an LCM, LCM-LoRA, PixArt-LCM)."""
    return AuthorsSettings("lcm", steps, scale, source, trained=trained)


def published_timesteps(timesteps: tuple[int, ...], source: str) -> AuthorsSettings:
    """A UNet distilled for one published schedule, sampled with LCMScheduler at guidance 0 (DMD2, Hyper-SDXL)."""
    return AuthorsSettings("lcm", (len(timesteps),), 0.0, source, (("timesteps", timesteps),))


def ddim_trailing(steps: int, scale: float, source: str) -> AuthorsSettings:
    return AuthorsSettings("ddim", (steps,), scale, source, timestep_spacing="trailing")


def euler_trailing(steps: int, source: str, prediction_type: str | None = None) -> AuthorsSettings:
    options = (("prediction_type", prediction_type),) if prediction_type else ()
    return AuthorsSettings("euler", (steps,), 0.0, source, options, timestep_spacing="trailing")


ADD = (
    "https://huggingface.co/docs/diffusers/api/pipelines/stable_diffusion/sdxl_turbo (guidance 0, trailing spacing, "
    "1 to 4 steps, 512 x 512) and each repository's scheduler_config.json (EulerAncestralDiscreteScheduler)"
)


def adversarial(source: str) -> AuthorsSettings:
    """An adversarially distilled Turbo model (Sauer et al. 2023, ADD): ancestral Euler at trailing spacing, no
    guidance, one step, trained for one to four."""
    return AuthorsSettings("euler-ancestral", (1,), 0.0, source, timestep_spacing="trailing", trained=(1, 2, 3, 4))


def tcd(
    steps: tuple[int, ...], eta: float, scale: float, source: str, trained: tuple[int, ...] = ()
) -> AuthorsSettings:
    return AuthorsSettings("tcd", steps, scale, source, (("eta", eta),), trained=trained)
