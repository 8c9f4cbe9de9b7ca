"""One step of the guided probability-flow ODE from timestep s to an earlier timestep t, as LCD's solver
Psi(z_s, s, t, c; w): DDIM (Song et al. 2021), DPM-Solver-2 and DPM-Solver++(2S) (Lu et al. 2022, singlestep,
second order: one extra teacher evaluation at the timestep halfway between s and t)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lcm_bench.core.registry import Registry

Guided = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _coefficients(alphas: torch.Tensor, t: torch.Tensor):
    a = alphas[t].view(-1, 1, 1, 1)
    alpha, sigma = a.sqrt(), (1 - a).sqrt()
    return alpha, sigma, torch.log(alpha / sigma)


def ddim(guided: Guided, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    eps, x0 = guided(x, s)
    alpha_t, sigma_t, _ = _coefficients(alphas, t)
    return alpha_t * x0 + sigma_t * eps


def _second_order(s: torch.Tensor, t: torch.Tensor, alphas: torch.Tensor):
    """The intermediate timestep u (the middle one), (alpha, sigma) at s, u and t, the step h in log-SNR/2 and
    r = (lambda_u - lambda_s) / h."""
    u = torch.div(s + t, 2, rounding_mode="floor")
    (alpha_s, sigma_s, lambda_s), (alpha_u, sigma_u, lambda_u), (alpha_t, sigma_t, lambda_t) = (
        _coefficients(alphas, time) for time in (s, u, t)
    )
    h = lambda_t - lambda_s
    r = ((lambda_u - lambda_s) / h).clamp(min=1e-3)
    return u, (alpha_s, sigma_s), (alpha_u, sigma_u), (alpha_t, sigma_t), h, r


def dpm_solver_2(guided: Guided, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, alphas: torch.Tensor):
    """DPM-Solver-2 (noise prediction) with the intermediate point u at the middle timestep."""
    u, (alpha_s, _), (alpha_u, sigma_u), (alpha_t, sigma_t), h, r = _second_order(s, t, alphas)
    eps_s, _ = guided(x, s)
    x_u = alpha_u / alpha_s * x - sigma_u * torch.expm1(r * h) * eps_s
    eps_u, _ = guided(x_u, u)
    return (
        alpha_t / alpha_s * x - sigma_t * torch.expm1(h) * eps_s - sigma_t / (2 * r) * torch.expm1(h) * (eps_u - eps_s)
    )


def dpm_solver_pp_2s(guided: Guided, x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, alphas: torch.Tensor):
    """DPM-Solver++(2S) (data prediction) with the intermediate point u at the middle timestep."""
    u, (_, sigma_s), (alpha_u, sigma_u), (alpha_t, sigma_t), h, r = _second_order(s, t, alphas)
    _, x0_s = guided(x, s)
    x_u = sigma_u / sigma_s * x - alpha_u * torch.expm1(-r * h) * x0_s
    _, x0_u = guided(x_u, u)
    d = (1 - 1 / (2 * r)) * x0_s + 1 / (2 * r) * x0_u
    return sigma_t / sigma_s * x - alpha_t * torch.expm1(-h) * d


SOLVERS: Registry[Callable[..., torch.Tensor]] = Registry("distillation solver")
"""LCD's ODE solvers Psi, by the name of the sampler they step like (``--solver``)."""
SOLVERS.register("ddim", ddim)
SOLVERS.register("dpmsolver", dpm_solver_2)
SOLVERS.register("dpmsolver++", dpm_solver_pp_2s)
