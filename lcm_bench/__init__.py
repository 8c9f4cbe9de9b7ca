"""lcm-bench: a benchmark harness for few-step diffusion samplers."""

__version__ = "0.1.0"
