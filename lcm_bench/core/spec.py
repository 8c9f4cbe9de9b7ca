"""Frozen dataclasses describing a suite and its cells (one grid point each).

A cell has two identities, never confused. Its *configuration key* (the hash in its id) says what was asked: gate
matching, report rows and merging runs use it; it leaves out execution settings (batch size, warm-up, image saving,
chunk size) and where files lie (a prompt set is named by its content, a local model by its suite name). Its *content
fingerprint* (lcm_bench.run.cell_fingerprint) says what produced a result: weights digests, the resolved scheduler, the
generation code's version; a cache or a finished cell is reused only while it is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

CELL_SPEC_VERSION = 2
EXECUTION_FIELDS = ("batch_size", "warmup", "save_images", "chunk_size")
LOCAL = "local"
SAVE_IMAGES = ("none", "grid", "all")


def stable_hash(obj: Any, length: int = 12) -> str:
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def _located(source: str) -> str:
    """A registry name or hub id as it is; a local path by no path at all (content goes into the fingerprint)."""
    return LOCAL if os.path.isabs(source) else source


def paper_w(guidance_scale: float) -> float:
    """LCM paper convention eps = (1 + w) eps_c - w eps_u, so w = diffusers guidance_scale - 1."""
    return guidance_scale - 1.0


@dataclass(frozen=True)
class Hardware:
    name: str
    device: str
    dtype: str


@dataclass(frozen=True)
class LoraSpec:
    source: str
    weight: float = 1.0
    weight_name: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model reference: a registry name, a local diffusers folder or a Hugging Face id, plus LoRA adapters; or a
    student lcm-bench distils (``distill`` options; ``source`` is its folder under the cache)."""

    name: str
    source: str
    loras: tuple[LoraSpec, ...] = ()
    guidance_embedding: bool | None = None
    distill: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    guidance: str = "auto"
    timestep_spacing: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        extra = [f"{k}={v}" for k, v in self.options]
        if self.timestep_spacing:
            extra.insert(0, f"spacing={self.timestep_spacing}")
        if self.guidance != "auto":
            extra.insert(0, f"guidance={self.guidance}")
        return self.name + (f"[{','.join(extra)}]" if extra else "")


@dataclass(frozen=True)
class CardSettings:
    """Which of a method's settings came from its checkpoint's registered authors' settings (``fields``), where they
    were read (``source``) and the step counts the checkpoint was trained for. It says where a value came from, not
    what it is, so it is never part of a cell's identity."""

    source: str
    fields: tuple[str, ...]
    trained_steps: tuple[int, ...]

    def untrained(self, steps: int) -> bool:
        return steps not in self.trained_steps


@dataclass(frozen=True)
class Method:
    """A named way of sampling: one model, one sampler with its options, guidance scales, optional own steps, the
    text length for families whose text encoder takes one, whether sizes are binned to the pipeline's aspect ratios
    (PixArt, SANA), and which settings came from the checkpoint's card."""

    name: str
    model: ModelSpec
    sampler: SamplerSpec
    guidance_scales: tuple[float, ...]
    steps: tuple[int, ...] | None = None
    text_length: int | None = None
    card: CardSettings | None = None
    card_steps: tuple[int, ...] | None = None
    resolution_binning: bool = False


@dataclass(frozen=True)
class RuntimeSpec:
    """A named deployment setting (a suite's ``runtimes``): runtime settings applied to a loaded pipeline, each a
    registered setting and its options (``lcm_bench.models.runtimes``). ``eager`` has none and is no runtime at all
    in a cell's identity, so suites from before the axis keep their cell ids."""

    name: str
    settings: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    @property
    def eager(self) -> bool:
        return not self.settings


EAGER = RuntimeSpec("eager")


@dataclass(frozen=True)
class PromptSetSpec:
    """A prompt set named by its content. ``categories`` (metadata columns) or ``annotator`` (categories derived
    from the prompts) group per-image results; ``missing`` says how to provide a dataset that is not prepared yet.
    None of the three changes an image, so none enters a cell's identity."""

    name: str
    source: str
    format: str
    column: str | None
    content_hash: str
    size: int
    categories: tuple[str, ...] = ()
    annotator: str | None = None
    missing: str | None = None


REPORTING_ONLY = ("categories", "annotator", "missing")


@dataclass(frozen=True)
class CellSpec:
    model: ModelSpec
    sampler: SamplerSpec
    steps: int
    guidance_scale: float
    prompts: PromptSetSpec
    hardware: Hardware
    seed: int
    num_images: int
    batch_size: int
    height: int
    width: int
    negative_prompt: str = ""
    save_images: str = "all"
    warmup: int = 1
    chunk_size: int = 1000
    method: str | None = None
    runtime: RuntimeSpec = EAGER
    text_length: int | None = None
    resolution_binning: bool = False
    card: CardSettings | None = None
    spec_version: int = field(default=CELL_SPEC_VERSION)

    def canonical(self) -> dict[str, Any]:
        data = asdict(self)
        del data["card"]
        if self.text_length is None:
            del data["text_length"]
        if not self.resolution_binning:
            del data["resolution_binning"]
        for name in REPORTING_ONLY:
            del data["prompts"][name]
        if not self.model.distill:
            del data["model"]["distill"]
        if self.method is None:
            del data["method"]
        if self.runtime.eager:
            del data["runtime"]
        return data

    def configuration(self) -> dict[str, Any]:
        """What the configuration key hashes: the canonical spec without execution settings and without where files
        lie, so two checkouts of a suite (or one with another batch size) share cell ids and a baseline."""
        data = self.canonical()
        for name in EXECUTION_FIELDS:
            del data[name]
        del data["prompts"]["source"]
        model = data["model"]
        if self.model.distill:
            distill = dict(self.model.distill)
            distill.pop("teacher_weights", None)
            distill["teacher"] = _located(distill["teacher"])
            model["distill"] = sorted(distill.items())
            model["source"] = None
        else:
            model["source"] = _located(model["source"])
        for lora in model["loras"]:
            lora["source"] = _located(lora["source"])
        if "runtime" in data:
            data["runtime"]["settings"] = [
                [name, [[k, _located(v) if isinstance(v, str) else v] for k, v in options]]
                for name, options in self.runtime.settings
            ]
        return data

    @cached_property
    def config_key(self) -> str:
        return stable_hash(self.configuration(), 16)

    @property
    def paper_w(self) -> float:
        return paper_w(self.guidance_scale)

    @property
    def cell_id(self) -> str:
        readable = f"{self.model.name}.{self.sampler.name}.s{self.steps}.g{self.guidance_scale:g}.{self.hardware.name}"
        readable += "" if self.runtime.eager else f".{self.runtime.name}"
        readable = re.sub(r"[^A-Za-z0-9_.+-]", "_", readable)
        return f"{readable}.{self.config_key[:10]}"

    @property
    def method_label(self) -> str:
        """The row label: the suite's method name, or model / sampler for a models x samplers grid."""
        return self.method or f"{self.model.name} / {self.sampler.label}"

    def axis_values(self) -> dict[str, Any]:
        """The values include/exclude rules match against."""
        return {
            "method": self.method,
            "model": self.model.name,
            "sampler": self.sampler.name,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "prompts": self.prompts.name,
            "hardware": self.hardware.name,
            "runtime": self.runtime.name,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class ReferenceSpec:
    """Reference images of a prompt set: a folder, a Parquet column of image bytes, or a registered generator."""

    kind: str
    source: str
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def metric_id(self) -> str:
        """Readable and file-safe: the metric plus what changes its numbers (extractor, mode, backbone)."""
        opts = dict(self.options)
        parts = [self.name]
        parts += [str(opts[k]) for k in ("extractor", "mode", "model", "net") if k in opts]
        if "pretrained" in opts:
            parts.append(str(opts["pretrained"]).replace("\\", "/").rsplit("/", 1)[-1])
        parts += [f"vs-{opts['reference']}"] if opts.get("reference") else []
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", "_".join(parts))


@dataclass(frozen=True)
class TimingPolicy:
    """How a cell's time is measured (a suite's ``timing:``): its repeats are the batches that generate its images,
    each timed as it runs, the chunks of one pipeline taking turns batch by batch. A cell with fewer than
    ``min_repeats`` whole batches has its batch generated again in interleaved rounds, its images discarded, until
    the ``level`` interval of the median seconds per image is within ``precision`` of it, or ``max_repeats``
    repeats, or ``max_seconds`` of repeats, when those extra batches cost at most ``top_up`` times its own (a
    cell that would cost more keeps its own batches, its interval at the coverage they reach, which its record
    states). Six repeats are the fewest whose range is a 95 % interval of the median. ``latency_queries`` (MLPerf
    SingleStream: queries of one image, one after another, for latency percentiles) and ``peak_throughput`` (MLPerf
    Offline: a batch-size sweep up to ``max_batch_size``) add measurements after the repeats."""

    min_repeats: int = 6
    max_repeats: int = 10
    precision: float = 0.05
    max_seconds: float = 5.0
    latency_queries: int = 0
    peak_throughput: bool = False
    max_batch_size: int = 256
    level: float = 0.95
    top_up: float = 0.25

    def tops_up(self, batches: int) -> bool:
        """Whether a cell whose generation gave ``batches`` whole batches is timed again: it has none, or fewer than
        ``min_repeats`` and the missing ones cost at most ``top_up`` times its own."""
        missing = self.min_repeats - batches
        return batches == 0 or 0 < missing <= self.top_up * batches

    @property
    def measures_latency(self) -> bool:
        return self.latency_queries > 0 or self.peak_throughput


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    cells: tuple[CellSpec, ...]
    source: str
    suite_hash: str
    metrics: tuple[MetricSpec, ...] = ()
    published: str | None = None
    references: dict[str, ReferenceSpec | None] = field(default_factory=dict, compare=False)
    timing: TimingPolicy = field(default_factory=TimingPolicy, compare=False)
