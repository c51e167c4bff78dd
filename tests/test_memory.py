"""restore_cli.memory: freed feature maps are reused, not page-faulted in afresh."""

import subprocess
import sys

import pytest

from restore_cli.memory import keep_freed_memory

# Runs a tiny SPAIR on a 1280x1024 image 3 times; prints the minor page faults of the last 2.
# Its 8-channel feature maps (42 MB) are above the 32 MB up to which glibc's default mmap
# threshold adapts, so with glibc's defaults they are mapped afresh every time (at 480x320
# the adaptive threshold sometimes kept them, and the default run barely faulted).
PROGRAM = """
import resource, sys, torch
from restore_cli.memory import keep_freed_memory
from restore_cli.models import SPAIR, TINY
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
model, image = SPAIR(TINY).eval(), torch.rand(1, 3, 1024, 1280)
with torch.inference_mode():
    model(image)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        model(image)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tunes glibc's malloc only")
def test_freed_memory_is_reused():
    def faults(mode: str) -> int:
        return int(subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                                  check=True).stdout)

    default, kept = faults("default"), faults("keep")
    assert default > 500_000  # glibc hands big feature maps back and maps them afresh (4 kB pages)
    assert kept < default / 4


def test_is_a_no_op_elsewhere(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
