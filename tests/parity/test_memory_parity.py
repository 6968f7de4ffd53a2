"""Memory parity with the official PyTorch MGUIT (`memory.npz`, tiny widths).

The official update, reads and losses on two synthetic cases (batch 2, 16x16
maps, sizes (10, 5, 2, 3)), from the initial memory of `inputs.npz` with the
recorded random values injected, to 1e-5 max-abs; the items each pixel is
assigned to (update top-1, loss targets) exactly. case1 has a class present
only in domain A (the read-only path) and overlapping class-1 and class-2 boxes.
Comparisons: `tests/parity/harness.py`.
"""

from __future__ import annotations

import pytest

from configs import tiny
from tests.parity import harness as parity

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def memory():
  return parity.by_group(parity.memory_comparisons(tiny.get_config()))


@pytest.mark.parametrize("group", parity.MEMORY_GROUPS)
def test_memory(memory, group):
  parity.assert_passed(memory.get(group, []))


def test_every_output_is_compared(memory):
  assert set(memory) == set(parity.MEMORY_GROUPS)
  for case in parity.MEMORY_CASES:
    assert len(memory[f"memory/{case}/reads"]) == 8   # sty_xy and rand_xy
    assert len(memory[f"memory/{case}/update"]) == 3  # keys and both values
