"""What every command-line entry point shares: argument check, quiet logs, XLA cache."""

from __future__ import annotations

from collections.abc import Callable
import logging as py_logging
import os

from absl import app, logging
import jax


class QuietLibraries(py_logging.Filter):
  """Keeps the log about our work: drops INFO lines of checkpointing and data libraries."""

  _NOISY = ("/orbax/", "/array_record/", "/tensorflow_datasets/", "/grain/")

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or not any(
        part in record.pathname for part in self._NOISY)


def use_compilation_cache() -> None:
  """Persistent XLA cache: re-running a command reuses its compiled functions."""
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(os.path.expanduser("~"), ".cache", "mguit_jax", "xla"))


def run(main: Callable[[], None]) -> None:
  """`absl.app.run` for a `main()` that reads its flags; positional arguments are an error."""

  def wrapped(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(QuietLibraries())
    use_compilation_cache()
    main()

  app.run(wrapped)
