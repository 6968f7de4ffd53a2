"""MGUIT (Memory-guided Unsupervised Image-to-image Translation) in JAX/Flax."""

__version__ = "0.1.0"
