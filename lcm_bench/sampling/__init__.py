"""The one sampling loop: sampler registry, guidance kinds that own their cost, phase timers."""
