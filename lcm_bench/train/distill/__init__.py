"""Distilling few-step students from a Stable-Diffusion-layout teacher: Latent Consistency Distillation (LCD) and
LCM-LoRA (Luo et al. 2023, arXiv 2310.04378 / 2311.05556)."""
