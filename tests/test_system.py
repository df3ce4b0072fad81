"""CPUs a job may use: the affinity mask a scheduler grants, not the machine's count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flickermine.decoding import process_decoding_available
from flickermine.mine.run import pool_decoder

_ONE_CPU = """
import os
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # as `taskset -c N` or SLURM would
from flickermine._system import available_cpus
from flickermine.cli.detect import default_workers
from flickermine.mine.run import _use_process, pool_decoder
print(available_cpus(), default_workers("torchvision", "cpu"), _use_process("auto"),
      pool_decoder("auto", 1))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks here")
def test_a_job_granted_one_cpu_plans_for_one():
    out = subprocess.run(
        [sys.executable, "-c", _ONE_CPU], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["1", "1", "False", "thread"]


@pytest.mark.parametrize(
    ("decoder", "workers", "cpus", "expected"),
    [
        ("auto", 2, 4, "process"),  # each worker gets a core for its decoder child
        ("auto", 2, 3, "thread"),  # the workers alone keep the cores busy
        ("auto", 1, 2, "process"),
        ("thread", 1, 64, "thread"),  # an explicit choice is kept
        ("process", 8, 2, "process"),
    ],
)
def test_parallel_workers_decode_in_a_process_only_with_cpus_to_spare(
    decoder, workers, cpus, expected
):
    if expected == "process" and decoder == "auto" and not process_decoding_available():
        expected = "thread"
    assert pool_decoder(decoder, workers, cpus) == expected
