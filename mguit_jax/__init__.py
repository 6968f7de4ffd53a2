"""MGUIT (Memory-guided Unsupervised Image-to-image Translation) in JAX/Flax."""

import os

# TensorFlow (imported by clu's TensorBoard writer) is otherwise loud at start-up.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
