"""Training the embedded models: attribute judge, autoencoder, teacher, in-domain CLIP (``lcm-bench train``)."""
