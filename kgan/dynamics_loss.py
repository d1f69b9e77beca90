"""A training loss on dynamics: how much, and how fast, each band's loudness moves within a window.

Measured on the shipped model (README, "The floor, measured"), the generated accompaniment's loudness
moves about half as much as the true one's in every style: the strums, hits and decays that tell guitar,
band and piano apart are missing. Where in time a strum falls is only partly told by the vocal, and
where it is not, L1's optimum is their average, a smooth bed. ``modulation_loss`` asks for the
movement without asking for its timing:

* each window ``[B, F, T, 1]`` (the [-1, 1] dB scale) is averaged over the bins of a few octave-wide
  bands (``band_edges``: the lowest band takes the first 16 bins, each band above twice as many), giving
  every band's loudness envelope over the window's ``T`` frames;
* each envelope, minus its mean and tapered by a Hann window, goes through a real FFT over time: the
  magnitudes are its modulation spectrum (how much the loudness moves at each rate, from one cycle per
  window to one per two frames);
* the loss is the mean absolute difference between the generated and the true modulation magnitudes.

Magnitudes ignore the phase, so a strum pattern scores the same wherever in the window it falls: the
term rewards the presence of the true amount of movement at the true rates (a smooth output pays the
true modulation in full), and leaves where to put it to L1 and the discriminator. It is used in training
only (``train.dynamics_weight``); the exported graph does not contain it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["band_edges", "modulation_spectrum", "modulation_loss"]


def band_edges(bins: int, lowest: int = 16) -> list[int]:
    """Octave-wide band edges over ``bins`` rows: 0, lowest, 2*lowest, ... up to ``bins``."""
    edges, top = [0], min(lowest, bins)
    while top < bins:
        edges.append(top)
        top *= 2
    return edges + [bins]


def modulation_spectrum(x, edges) -> tf.Tensor:
    """``[B, bands, T // 2]``: each band's loudness modulation magnitude (DC left out) of windows ``[B, F, T, 1]``."""
    x = tf.convert_to_tensor(x, tf.float32)[..., 0]  # [B, F, T]
    envelopes = tf.stack([tf.reduce_mean(x[:, a:b, :], axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    frames = envelopes.shape[-1]
    taper = tf.constant(np.hanning(frames + 2)[1:-1], tf.float32)  # a Hann window without its zero ends
    centred = (envelopes - tf.reduce_mean(envelopes, axis=-1, keepdims=True)) * taper
    spectrum = tf.abs(tf.signal.rfft(centred)) / float(np.sum(np.hanning(frames + 2)))  # [B, bands, T/2 + 1]
    return spectrum[..., 1 : frames // 2 + 1]


def modulation_loss(fake, target, edges) -> tf.Tensor:
    """Per example ``[B]``: mean |modulation(fake) - modulation(target)| (``modulation_spectrum``)."""
    return tf.reduce_mean(tf.abs(modulation_spectrum(fake, edges) - modulation_spectrum(target, edges)), axis=[1, 2])
