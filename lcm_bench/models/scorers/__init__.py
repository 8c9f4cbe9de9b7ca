"""Human-preference scorers on the libraries lcm-bench already uses (open_clip, transformers, torch), from the files
their authors publish, read as published (their key names and shapes): HPSv2 / v2.1, ImageReward, PickScore and
the LAION aesthetic predictor. ``files`` finds and safely reads those files and checks their layout."""
