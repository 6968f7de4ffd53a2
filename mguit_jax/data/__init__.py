"""Data: the synthetic street scenes, TFDS builders of the real datasets, the grain pipeline."""

from mguit_jax.data.pipeline import ensure_prepared
from mguit_jax.data.pipeline import has_paired_truth
from mguit_jax.data.pipeline import load_test_pairs
from mguit_jax.data.pipeline import make_train_iterator
from mguit_jax.data.pipeline import random_batch
from mguit_jax.data.pipeline import test_images
from mguit_jax.data.pipeline import validate_example

__all__ = ["ensure_prepared", "has_paired_truth", "load_test_pairs", "make_train_iterator", "random_batch",
           "test_images", "validate_example"]
