"""What every command-line entry point shares: argument check, quiet logs, XLA cache."""

from __future__ import annotations

from collections.abc import Callable
import logging as py_logging
import os
import re
import sys

from absl import app, flags, logging
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


def unknown_field_message(error: Exception, argv: list[str]) -> str:
  """One line for a `--config.<field>=` override naming no field, with ml_collections' guess."""
  text = str(error).replace("\\", "")
  guess = re.search(r'Did you mean "([^"]+)"', text)
  missing = re.search(r'instead of "([^"]+)"', text) or re.search(r"'(\w+)'", text)
  for arg in argv:
    path = arg.lstrip("-").split("=", 1)[0]
    parts = path.split(".")
    if missing and parts[0] == "config" and missing.group(1) in parts[1:]:
      line = f"{path}: no such field"
      if guess:
        parts[parts.index(missing.group(1), 1)] = guess.group(1)
        line += f"; did you mean {'.'.join(parts)}?"
      return line
  return f"invalid --config override: {error}"


def import_torch():
  """PyTorch, which only reading and writing official checkpoints needs."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("reading or writing official PyTorch checkpoints needs PyTorch: "
                      "pip install torch") from e
  return torch


def run(main: Callable[[], None]) -> None:
  """`absl.app.run` for a `main()` that reads its flags; positional arguments are an error.

  An override naming no config field ends in one line (exit status 2), not a traceback.
  """

  def wrapped(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(QuietLibraries())
    use_compilation_cache()
    main()

  try:
    app.run(wrapped)
  except (AttributeError, KeyError) as e:
    if flags.FLAGS.is_parsed():   # raised by the program, not by the flag parser
      raise
    print(f"FATAL Flags parsing error: {unknown_field_message(e, sys.argv)}", file=sys.stderr)
    sys.exit(2)
