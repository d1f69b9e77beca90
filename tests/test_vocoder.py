"""The learned vocoder: its head keeps the given magnitude, training lowers the loss and resumes, it exports."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kgan.spectrogram import Spectrogram
from kgan.vocoder import (EXPORT_REFINE_ITERS, Vocoder, VocoderNet, VocoderSettings, _load_accompaniments,
                          _saved_settings, _song_sources, load_vocoder, multi_resolution_stft_loss, resolutions,
                          stft_distances, train_vocoder)

TINY = VocoderSettings(channels=16, blocks=1, batch_size=2, segment_frames=16, checkpoint_every=10, max_songs=3,
                       learning_rate=2e-3)


def _tone(rate, seconds=1.0, hz=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * np.sin(2 * np.pi * 3 * hz * t)).astype(np.float32)


def test_a_fresh_head_keeps_the_given_magnitude_and_any_length(tiny_config):
    spec = Spectrogram(tiny_config.stft)
    vocoder = Vocoder(VocoderNet(tiny_config.stft.num_bins, TINY), tiny_config.stft, TINY)
    for samples in (1000, 4321):
        audio = _tone(tiny_config.audio.sample_rate)[:samples][None]
        normalised = spec.to_model(audio)
        stft = vocoder.complex_stft(normalised)
        assert stft.shape == (1, normalised.shape[1], tiny_config.stft.n_fft // 2 + 1)
        np.testing.assert_allclose(tf.abs(stft).numpy() / spec.scale, spec.from_model(normalised).numpy(),
                                   rtol=1e-5)  # zero-initialised head: gain 1, phase 0
        assert vocoder.waveform(normalised, samples).shape == (1, samples)


def test_refinement_keeps_the_given_magnitude_loud_and_the_networks_quiet(tiny_config):
    spec = Spectrogram(tiny_config.stft)
    rate = tiny_config.audio.sample_rate
    audio = _tone(rate, seconds=2.0, hz=rate / 16)[None]  # two partials; most bins sit at the view's floor
    normalised = spec.to_model(audio)
    given = spec.from_model(normalised).numpy()[0]
    net = VocoderNet(tiny_config.stft.num_bins, TINY)
    head = net.get_layer("head")
    bias = head.bias.numpy()
    bias[0::3] = -2.0  # the network's magnitude: every bin of the given one, 2 nepers (17 dB) down
    head.bias.assign(bias)

    def refined(quiet_db):
        settings = dataclasses.replace(TINY, refine_iters=8, quiet_db=quiet_db)
        out = Vocoder(net, tiny_config.stft, settings).waveform(normalised, audio.shape[-1])
        return spec.magnitude(spec.forward(out)).numpy()[0]

    floor = given <= spec.floor_magnitude * 1.0001
    floor[:, : given.argmax(axis=-1).max() + 40] = False  # the partials' own leakage aside
    loud = given > 0.01
    assert floor.sum() > 1000 and loud.sum() > 10
    ours, everywhere = refined(-70.0), refined(None)
    # loud bins keep the given magnitude (the network's would be 2 nepers down) ...
    assert np.median(ours[loud] / given[loud]) > 0.8
    # ... and the floor's bins take the network's, where aiming at the given magnitude everywhere fills them
    assert np.median(ours[floor]) < 0.4 * spec.floor_magnitude
    assert np.median(everywhere[floor]) > 0.6 * spec.floor_magnitude


def test_a_folder_from_before_keeps_what_it_was_trained_and_run_with():
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "vocoder", "refine8", "vocoder.json")) as f:
        saved = json.load(f)["settings"]  # written before the embedding's width, the algorithm and quiet_db
    assert not {"embed_kernel", "refine_algorithm", "quiet_db"} & set(saved)
    settings = _saved_settings(saved)
    assert (settings.embed_kernel, settings.refine_algorithm, settings.quiet_db) == (saved["kernel"], "fast", None)
    assert (settings.channels, settings.blocks, settings.refine_iters) == (192, 6, 8)
    assert _saved_settings({**saved, "quiet_db": -60.0}).quiet_db == -60.0  # what a folder states, it keeps


def test_stft_distances_know_their_answers(tiny_config):
    spec = Spectrogram(tiny_config.stft)
    audio = 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)  # every bin above the floor
    given = spec.to_model(audio[None])[0].numpy()
    same = stft_distances(audio, audio, given, spec)
    assert same["spectral_convergence"] < 1e-6 and same["log_spectral_distance"] < 1e-3 and same["mr_stft"] < 1e-3
    assert same["consistency"] < 1e-3
    half = stft_distances(audio, audio / 2, given, spec)
    assert abs(half["spectral_convergence"] - 0.5) < 1e-4
    assert 5.0 < half["log_spectral_distance"] < 6.1  # 6.02 dB where both are above the floor
    assert half["consistency"] > 0.4


def test_training_lowers_the_loss_resumes_and_exports_with_core_ops(chorale_dir, run_dir, tiny_config, tmp_path):
    out = tmp_path / "vocoder"
    # from a zero phase the network has everything to learn, so its learning shows within 100 tiny steps (from
    # the locked integrated phase, which is already near, these steps gain about 3 %)
    zero = dataclasses.replace(TINY, phase_prior="zero")
    first = train_vocoder(chorale_dir, str(out), tiny_config, zero, steps=20, progress=False)
    history = [json.loads(line) for line in open(out / "history.jsonl")]
    assert [h["step"] for h in history] == [1]  # written at the first step and every 50
    assert np.isfinite(first["loss"])
    train_vocoder(chorale_dir, str(out), tiny_config, zero, steps=100, progress=False)
    history = [json.loads(line) for line in open(out / "history.jsonl")]
    assert [h["step"] for h in history] == [1, 50, 100]  # resumed from step 20, not restarted
    # fitted: on a clip of a training song, the distance to the true waveform falls well below the fresh
    # network's (1.45 against 2.77 when measured; a network that did not learn scores the fresh one's)
    spec = Spectrogram(tiny_config.stft)
    audio = _load_accompaniments(_song_sources(chorale_dir), tiny_config.audio.sample_rate, False)[0]
    audio = audio[None, : tiny_config.audio.sample_rate * 4]

    def distance(vocoder):
        estimate = vocoder.waveform(spec.to_model(audio), audio.shape[-1])
        return float(multi_resolution_stft_loss(audio, estimate, resolutions(tiny_config.stft))[0])

    fresh = distance(Vocoder(VocoderNet(tiny_config.stft.num_bins, zero), tiny_config.stft, zero))
    fitted = distance(load_vocoder(str(out)))
    assert fitted < 0.75 * fresh, (fitted, fresh)
    # a resume keeps the folder's own settings, and refuses others that the checkpoint would not fit
    assert train_vocoder(chorale_dir, str(out), tiny_config, None, steps=100, progress=False) == {}
    with pytest.raises(ValueError, match=f"trained with channels={TINY.channels}, not {TINY.channels + 8}"):
        train_vocoder(chorale_dir, str(out), tiny_config, dataclasses.replace(zero, channels=TINY.channels + 8),
                      steps=101, progress=False)
    with pytest.raises(ValueError, match="another stft"):
        train_vocoder(chorale_dir, str(out), tiny_config.override(**{"stft.hop_length": 32}), zero, steps=1,
                      progress=False)

    from kgan.export import export, forbidden_ops, load, unrestored_variables

    def settings(path):
        with open(os.path.join(path, "assets", "kgan_config.json")) as f:
            meta = json.load(f)
        assert meta["phase"] == "vocoder"
        return meta["vocoder"]

    alone = export(run_dir[0], str(tmp_path / "half"), vocoder=str(out), weights="float16", griffin_lim_iters=0)
    assert forbidden_ops(alone) == [] and settings(alone)["refine_iters"] == 0  # the network alone, as asked
    path = export(run_dir[0], str(tmp_path / "exports"), vocoder=str(out))
    assert forbidden_ops(path) == [] and unrestored_variables(path) == []
    # trained without Griffin-Lim iterations, it is exported with the default refinement after it
    assert (settings(path)["refine_iters"], settings(path)["refine_algorithm"]) == (EXPORT_REFINE_ITERS, "accelerated")
    model, config, _ = load(path)
    vocal = _tone(config.audio.sample_rate, 2.5, 220.0)[None]
    served = model.signatures["serving_default"](vocal=vocal)["accompaniment"].numpy()
    assert served.shape == vocal.shape and np.all(np.isfinite(served))
    # the export's waveform is the vocoder run on the generated spectrogram; the integrated phase carries any
    # rounding on through the song, so compare what is heard: magnitudes
    vocoder = load_vocoder(str(out), config.stft, config.audio.sample_rate, refine_iters=EXPORT_REFINE_ITERS)
    from kgan.inference import Generate

    local = Generate(run_dir[1].generator, config, vocoder=vocoder)(vocal).numpy()
    spec = Spectrogram(config.stft)
    a, b = (spec.magnitude(spec.forward(w)).numpy() for w in (local, served))
    assert np.linalg.norm(a - b) < 0.01 * np.linalg.norm(a), np.linalg.norm(a - b) / np.linalg.norm(a)
    with pytest.raises(ValueError, match="trained at 8000 Hz"):
        load_vocoder(str(out), config.stft, 16000)


def test_a_vocoder_trained_through_griffin_lim_keeps_its_iterations(chorale_dir, tiny_config, tmp_path):
    """--refine N --loss convergence: the loss scores the refined waveform by spectral convergence alone, the
    gradient reaches the network through the iterations, and the folder's vocoder runs them at inference."""
    settings = dataclasses.replace(TINY, refine_iters=2, log_weight=0.0, mel_weight=0.0)
    out = tmp_path / "refined"
    metrics = train_vocoder(chorale_dir, str(out), tiny_config, settings, steps=3, progress=False)
    assert metrics["loss"] == pytest.approx(metrics["mr_stft"])  # no log-magnitude or log-mel term
    assert 0.0 < metrics["loss"] < 2.0  # spectral convergence alone: a ratio of norms, not a log distance
    vocoder = load_vocoder(str(out), tiny_config.stft, tiny_config.audio.sample_rate)
    assert vocoder.settings.refine_iters == 2
    head = vocoder.net.get_layer("head").kernel.numpy()  # zero at the start
    assert np.max(np.abs(head)) > 0.0  # gradients flowed through the two Griffin-Lim iterations into the network

    spec = Spectrogram(tiny_config.stft)
    audio = _tone(tiny_config.audio.sample_rate)[None]
    normalised = spec.to_model(audio)
    refined = vocoder.waveform(normalised, audio.shape[1]).numpy()
    alone = load_vocoder(str(out), tiny_config.stft, tiny_config.audio.sample_rate, refine_iters=0)
    assert refined.shape == audio.shape
    assert not np.allclose(refined, alone.waveform(normalised, audio.shape[1]).numpy())
