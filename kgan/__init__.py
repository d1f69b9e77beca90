"""kgan: generate the accompaniment of a sung vocal (pix2pix on spectrograms)."""

__version__ = "0.1.0"
