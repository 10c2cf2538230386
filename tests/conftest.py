"""Fixtures shared by several test modules. The helpers behind them live in their own modules
(testkit/, slurm_cluster.py) and are imported by name where needed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from slurm_cluster import SlurmCluster, ensure_slurm_installed, running_cluster

from testkit.openai_server import ChatServer

if TYPE_CHECKING:
    from testkit.tiny_experiment import TinySetup


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """The loopback chat-completions server; each test sets its handler with `reset`."""
    server = ChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A real single-node SLURM on localhost (skips without the binaries or without root)."""
    why_not = ensure_slurm_installed()
    if why_not:
        pytest.skip(why_not)
    if os.geteuid() != 0:
        pytest.skip("the test SLURM runs slurmd as root (job user switching); run the tests as root, as CI does")
    with running_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinySetup:
    """The tiny local experiment set-up (testkit/tiny_experiment.py), built once per test module."""
    from testkit.tiny_experiment import build_tiny_setup  # torch/transformers: only for the modules that use it

    return build_tiny_setup(tmp_path_factory.mktemp("tiny"))
