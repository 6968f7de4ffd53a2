"""Network parity with the official PyTorch MGUIT (golden tensors, tiny widths).

Whole networks on the shared 216x216 inputs (`modules.npz`, 1e-4 max-abs) and
every block, plus the leaf layers of one block per kind, on small inputs
(`blocks.npz`, 1e-5), each fed its golden input. Comparisons: `tests/parity/harness.py`.
"""

from __future__ import annotations

import pytest

from configs import tiny
from tests.parity import harness as parity

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def networks():
  return parity.by_group(parity.network_comparisons(tiny.get_config()))


@pytest.fixture(scope="module")
def blocks():
  return parity.by_group(parity.block_comparisons(tiny.get_config()))


@pytest.mark.parametrize("group", parity.NETWORK_GROUPS)
def test_network(networks, group):
  parity.assert_passed(networks.get(group, []))


@pytest.mark.parametrize("group", parity.BLOCK_GROUPS)
def test_blocks(blocks, group):
  parity.assert_passed(blocks.get(group, []))


def test_every_output_is_compared(networks, blocks):
  assert set(networks) == set(parity.NETWORK_GROUPS)
  assert set(blocks) == set(parity.BLOCK_GROUPS)
  # Encoders and generator per domain; 3 discriminator scales per domain; D_c per domain.
  assert [len(networks[g]) for g in parity.NETWORK_GROUPS] == [2, 2, 2, 3, 3, 2]
  assert sum(map(len, blocks.values())) == 119
