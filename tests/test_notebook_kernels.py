"""The kernels nbmake starts for the notebooks (the repository's conftest.py sets how they connect)."""

import os

import pytest


def test_notebook_kernels_under_nbmake_use_unix_sockets():
    """They listen on Unix sockets, so no other process can take their ports between jupyter_client choosing
    them and the kernel binding them (it happened once in a 4-worker run: the kernel died at start)."""
    import nbformat
    import nbmake.nb_run as nb_run

    if os.name != "posix":
        pytest.skip("Unix sockets: elsewhere kernels stay on TCP")
    client = nb_run.NotebookClient(nbformat.v4.new_notebook(), timeout=10)
    manager = client.create_kernel_manager()
    assert manager.transport == "ipc"
    assert os.path.isabs(manager.ip), "the kernel runs in the notebook's folder: a relative path is another socket"
