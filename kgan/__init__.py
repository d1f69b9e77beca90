"""kgan: generate the accompaniment of a sung vocal (pix2pix on spectrograms)."""

__version__ = "0.1.0"


def use_served_kernels() -> None:
    """Set the kernels ``kgan generate`` and ``kgan serve`` run: oneDNN's, on the system's allocator.

    oneDNN serves a 10-s request to the shipped model in 0.45 s at p50 against 0.58 s on TensorFlow's own
    kernels (benchmarks/serving.py --kernels tf,onednn). Its default allocator is a pool that kept what a
    server's large requests used (2.15 GiB resident after the largest); on the system's malloc the server
    keeps 1.00 GiB, as on TF's kernels (0.95 GiB; benchmarks/memory.py). One kernel set everywhere also
    makes ``kgan generate`` write the same bytes locally as through ``kgan serve``: the two sets round
    differently. The environment wins (``TF_ENABLE_ONEDNN_OPTS=0`` runs TF's own kernels), and so does
    a TensorFlow already imported, which has read it.
    """
    import os
    import sys

    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
        os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
