"""Model references -> files -> loaded pipelines: the catalogue (each kind a resolver), loading, shared components,
tiny builders and open_clip loading."""
