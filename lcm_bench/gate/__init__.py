"""The quality gate: baselines, checks and their summaries, from records and metric entries only."""
