"""The world lcm-bench measures: the procedural shapes domain, prompt sets, published tables and the judge."""
