import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kgan.chords import (NO_CHORD, ChordNet, PlanRenderer, chord_labels, chord_notes, corpus_arrays, frame_accuracy,
                         load_chord_net, track_labels, train_chord_net, transpose)
from kgan.config import get_preset
from kgan.features import VocalFeatures
from kgan.spectrogram import Spectrogram

CONFIG = get_preset("default").override(**{"model.vocal_input": "plan"})
RATE = CONFIG.audio.sample_rate


def _chord_audio(chords, seconds=1.0, rate=RATE):
    """Organ-like chords: each (root midi, minor?) as its triad over two octaves, 6 harmonics a note; None: silence."""
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for chord in chords:
        x = np.zeros_like(t)
        if chord is not None:
            root, minor = chord
            for note in (root, root + (3 if minor else 4), root + 7, root + 12):
                f0 = 440.0 * 2 ** ((note - 69) / 12)
                x += sum(0.7 ** h * np.sin(2 * np.pi * (h + 1) * f0 * t) for h in range(6) if (h + 1) * f0 < rate / 2)
        out.append(x)
    wave = np.concatenate(out)
    return (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)


def _image(wave, config=CONFIG):
    spec = Spectrogram(config.stft)
    return tf.transpose(spec.to_model(tf.constant(wave[None])), [0, 2, 1])[..., None]  # (1, F, T, 1)


def test_labels_read_the_triad_the_accompaniment_plays_and_no_chord_in_silence():
    s = CONFIG.stft
    wave = _chord_audio([(60, False), (57, True), None, (67, False), (62, True)])
    labels = chord_labels(_image(wave), RATE, s.n_fft, s.hop_length, s.db_floor, s.db_ceiling).numpy()[0]
    per_second = RATE / s.hop_length
    middle = [labels[int((i + 0.5) * per_second) - 5: int((i + 0.5) * per_second) + 5] for i in range(5)]
    # C major (root 0, even id), A minor (root 9, odd id), silence, G major, D minor
    assert [int(np.bincount(m).argmax()) for m in middle] == [0, 19, NO_CHORD, 14, 5]
    assert chord_notes(tf.constant([0, 19, NO_CHORD])).numpy().tolist() == [
        [1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0], [0] * 12]


def test_score_chords_land_on_the_frames_whose_centre_they_cover():
    s = CONFIG.stft
    per_frame = s.hop_length / RATE
    track = [[0.0, 1.0, 0], [1.0, 2.5, 19], [3.0, 4.0, 14]]  # C, Am, a gap, G
    labels = track_labels(track, 400, CONFIG)
    centre = (np.arange(400) * s.hop_length + s.hop_length - s.n_fft / 2) / RATE
    assert labels.dtype == np.int8 and labels.shape == (400,)
    assert labels[centre < 0].tolist() == [NO_CHORD] * int((centre < 0).sum())  # the padding before the song
    for t, want in ((0.5, 0), (1.0 + per_frame, 19), (2.49, 19), (2.75, NO_CHORD), (3.5, 14), (4.2, NO_CHORD)):
        assert labels[np.argmin(np.abs(centre - t))] == want, t


def test_transposing_moves_melody_and_chords_together_and_keeps_no_chord():
    rng = np.random.default_rng(0)
    features = rng.random((2, 50, 14)).astype(np.float32)
    labels = rng.integers(0, 25, (2, 50)).astype(np.int32)
    moved_f, moved_y = transpose(tf.constant(features), tf.constant(labels), tf.constant([3, 0]))
    moved_f, moved_y = moved_f.numpy(), moved_y.numpy()
    np.testing.assert_array_equal(moved_f[0, :, (np.arange(12) + 3) % 12], features[0, :, :12].T)
    np.testing.assert_array_equal(moved_f[0, :, 12:], features[0, :, 12:])  # level and voicing stay
    np.testing.assert_array_equal(moved_f[1], features[1])  # 0 semitones: unchanged
    chord = labels[0] != NO_CHORD
    np.testing.assert_array_equal(moved_y[0][~chord], NO_CHORD)
    np.testing.assert_array_equal(moved_y[0][chord] // 2, (labels[0][chord] // 2 + 3) % 12)  # the root moves
    np.testing.assert_array_equal(moved_y[0][chord] % 2, labels[0][chord] % 2)  # the quality stays
    # the triads' pitch classes move with the melody's
    np.testing.assert_array_equal(np.roll(chord_notes(labels[0]).numpy(), 3, axis=-1), chord_notes(moved_y[0]).numpy())


def test_the_plan_plane_renders_the_true_chords_and_corruption_changes_roots_only():
    planner = PlanRenderer(CONFIG)
    wave = _chord_audio([(60, False), (57, True)], seconds=0.75)
    target = _image(wave)[:, :, :128]
    labels = planner.labels(target).numpy()
    plane = planner.true_plan(target).numpy()
    assert plane.shape == (1, 512, 128, 1) and plane.min() >= -1 and plane.max() <= 1
    np.testing.assert_array_equal(plane, planner.image(labels).numpy())
    bin_hz = RATE / CONFIG.stft.n_fft
    near = int(round(261.6 / bin_hz))
    lit = plane[0, near - 1: near + 2, :, 0].max(axis=0)  # middle C (between two bins): in C major and A minor
    assert (lit[labels[0] != NO_CHORD] > 0.0).all()
    unlit = plane[0, int(round(277.2 / bin_hz)) + 1, :, 0]  # above C#, in neither
    assert (unlit < -0.9).all()
    np.testing.assert_array_equal(planner.image(tf.fill([1, 128], NO_CHORD)).numpy(), -1.0)
    seed = tf.constant([7, 1], tf.int64)
    corrupt = planner.true_plan(target, seed, corruption=1.0).numpy()
    np.testing.assert_array_equal(corrupt, planner.true_plan(target, seed, corruption=1.0).numpy())  # seeded
    chord = labels[0] != NO_CHORD
    assert not np.any(np.all(corrupt[0, :, chord, 0] == plane[0, :, chord, 0], axis=-1))  # every chord frame moved
    np.testing.assert_array_equal(planner.true_plan(target, seed, corruption=0.0).numpy(), plane)
    # the score's chords where given (>= 0), the heard ones elsewhere
    given = np.full((1, 128), -1, np.int32)
    given[0, :40] = 14  # G major
    mixed = planner.true_plan(target, labels=tf.constant(given)).numpy()
    want = np.where(given >= 0, given, labels)
    np.testing.assert_array_equal(mixed, planner.image(want).numpy())


def test_the_plan_input_puts_the_given_plan_before_the_track_planes():
    plan_layer = VocalFeatures.from_kgan_config(CONFIG)
    track = VocalFeatures.from_kgan_config(CONFIG.override(**{"model.vocal_input": "track"}))
    vocal = _image(_chord_audio([(60, False)], seconds=1.5))[:, :, :128]
    plan = PlanRenderer(CONFIG).image(tf.fill([1, 128], 14))
    out = plan_layer(tf.concat([vocal, plan], axis=-1)).numpy()
    assert out.shape == (1, 512, 128, 4)
    np.testing.assert_allclose(out[..., 0], plan.numpy()[..., 0])
    np.testing.assert_allclose(out[..., 1:], track(vocal).numpy(), atol=1e-6)
    np.testing.assert_allclose(plan_layer.melody(tf.concat([vocal, plan], -1)).numpy(), track.melody(vocal).numpy())


def test_chord_net_runs_on_any_length_and_reloads(tmp_path):
    net = ChordNet(channels=8, dilations=(1, 2))
    for frames in (1, 37, 400):
        assert net(np.zeros((2, frames, 14), np.float32)).shape == (2, frames, 25)
    x = np.random.default_rng(1).random((1, 90, 14)).astype(np.float32)
    net.save_weights(str(tmp_path / "chordnet.weights.h5"))
    s = CONFIG.stft
    (tmp_path / "chords.json").write_text(json.dumps({"chordnet": net.get_config(), "sample_rate": RATE,
                                                      "stft": {"n_fft": s.n_fft, "hop_length": s.hop_length}}))
    np.testing.assert_allclose(load_chord_net(str(tmp_path), CONFIG)(x).numpy(), net(x).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="chords.json: trained at rate/n_fft/hop"):
        load_chord_net(str(tmp_path), get_preset("tiny"))
    with pytest.raises(FileNotFoundError, match="kgan chords train"):
        load_chord_net(str(tmp_path / "missing"), CONFIG)


def test_note_starts_mark_new_pitches_and_repeated_attacks_only():
    from kgan.chords import MelodyOnsets

    x = np.zeros((1, 6, 14), np.float32)
    x[0, :, 13] = 0.9
    x[0, 0:2, 0] = 1.0  # C, held
    x[0, 2:4, 7] = 1.0  # then G: a new pitch class
    x[0, 4:6, 7] = 1.0  # G again, re-attacked: only the level rises
    x[0, :, 12] = [-0.2, -0.2, -0.2, -0.4, 0.1, 0.1]
    onsets = MelodyOnsets()(x).numpy()[0]
    np.testing.assert_allclose(onsets[:, 0], [0, 0, 1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(onsets[:, 1], [0, 0, 0, 0, 0.5, 0], atol=1e-6)


def _tapped_melody(seconds_per_beat, beats, offset_frames, rate=RATE / CONFIG.stft.hop_length, seed=0):
    """Melody features of a tune in strict time: a new pitch class on every beat, louder on every third."""
    rng = np.random.default_rng(seed)
    frames = int(offset_frames + beats * seconds_per_beat * rate) + 20
    x = np.zeros((frames, 14), np.float32)
    x[:, 12], x[:, 13] = -1.0, -0.6
    starts = [int(round(offset_frames + b * seconds_per_beat * rate)) for b in range(beats + 1)]
    pitch = 0
    for b, (start, end) in enumerate(zip(starts, starts[1:])):
        pitch = (pitch + rng.integers(1, 12)) % 12  # never the one before
        x[start:end, pitch] = 1.0
        x[start:end, 12] = -0.2 if b % 3 == 0 else -0.5
        x[start:end, 13] = 0.9
    return x, np.array(starts[:-1])


def test_the_beat_grid_finds_the_tempo_and_the_beats_of_a_tune_in_strict_time():
    from kgan.chords import MelodyBeats

    layer = MelodyBeats(RATE / CONFIG.stft.hop_length)
    for seconds_per_beat, offset in ((0.5, 0), (0.71, 17), (0.43, 40)):
        x, starts = _tapped_melody(seconds_per_beat, 30, offset)
        grid = layer(x[None]).numpy()[0]
        assert grid.shape == (len(x), 8)
        beat = np.unwrap(np.arctan2(grid[:, 1], grid[:, 0]))  # level 1: one turn a beat
        period = 2 * np.pi / np.mean(np.diff(beat))
        assert abs(period / (seconds_per_beat * RATE / CONFIG.stft.hop_length) - 1) < 0.03, (seconds_per_beat, period)
        assert np.mean(grid[starts + 2, 0]) > 0.8  # phase 0 on the note starts (smoothed by 2 frames)
        # level 3: phase 0 on the accented beats (every third), not between them
        bar = grid[:, 4]
        assert np.mean(bar[starts[::3] + 2]) > 0.7 > np.mean(bar[starts[1::3] + 2])
    rolled = np.concatenate([np.roll(x[:, :12], 5, axis=1), x[:, 12:]], axis=1)
    np.testing.assert_allclose(layer(rolled[None]).numpy(), layer(x[None]).numpy(), atol=1e-5)
    assert np.abs(layer(np.zeros((1, 300, 14), np.float32)).numpy()).max() == 0.0


def test_a_known_beat_grid_marks_beats_and_chord_segments_and_zeros_stand_for_unknown():
    from kgan.chords import meter_grid

    s, rate = CONFIG.stft, CONFIG.audio.sample_rate
    frames = 400
    centre = (np.arange(frames) * s.hop_length + s.hop_length - s.n_fft / 2) / rate
    grid = meter_grid(np.array([[0.5, 1.5, 0.25], [0, 0, 0]], np.float32), frames, CONFIG).numpy()
    assert grid.shape == (2, frames, 4) and not grid[1].any()
    np.testing.assert_allclose(grid[0, :, 0], np.cos(2 * np.pi * centre / 0.5), atol=1e-4)
    np.testing.assert_allclose(grid[0, :, 2], np.cos(2 * np.pi * (centre - 0.25) / 1.5), atol=1e-4)
    downbeats = np.round((np.array([0.25, 1.75, 3.25]) * rate - s.hop_length + s.n_fft / 2) / s.hop_length).astype(int)
    assert (grid[0, downbeats, 2] > 0.99).all()


def test_a_user_s_grid_a_little_off_is_pulled_onto_the_melody_s_note_starts():
    from kgan.chords import refine_meter

    s, rate = CONFIG.stft, CONFIG.audio.sample_rate
    x, starts = _tapped_melody(0.5, 60, 40)
    first = (starts[0] * s.hop_length + s.hop_length - s.n_fft / 2) / rate  # the first note start, in seconds
    given = np.array([[0.5 * 1.03, 1.0 * 1.03, first + 0.06],  # 3 % slow, the downbeat 60 ms late
                      [0.5 / 1.02, 1.0 / 1.02, first + 0.5 - 0.04],  # 2 % fast, the bar starting on the 2nd note
                      [0.0, 0.0, 0.0]], np.float32)  # unknown
    refined = refine_meter(np.repeat(x[None], 3, 0), given, CONFIG).numpy()
    np.testing.assert_allclose(refined[:2, 0], 0.5, rtol=0.003)  # the beat
    np.testing.assert_allclose(refined[:2, 1], 1.0, rtol=0.003)  # the segment scales with it
    np.testing.assert_allclose(refined[:2, 2], [first, first + 0.5], atol=0.015)  # which beat: still the user's
    np.testing.assert_array_equal(refined[2], 0.0)


def test_a_chord_net_told_the_grid_hears_it_stays_equivariant_and_reloads(tmp_path):
    from kgan.chords import chord_logits, meter_grid

    net = ChordNet(channels=8, dilations=(1, 2), grid=True)
    rng = np.random.default_rng(4)
    x = rng.random((1, 120, 14)).astype(np.float32)
    grid = meter_grid(np.array([[0.5, 1.0, 0.2]], np.float32), 120, CONFIG)
    unknown = chord_logits(net, x).numpy()
    np.testing.assert_allclose(net([x, np.zeros((1, 120, 4), np.float32)]).numpy(), unknown, atol=1e-6)
    told = chord_logits(net, x, grid).numpy()
    assert np.abs(told - unknown).max() > 1e-4
    up, _ = transpose(x, np.zeros((1, 120), np.int32), np.array([7]))
    moved = 2 * ((np.arange(24) // 2 - 7) % 12) + np.arange(24) % 2
    np.testing.assert_allclose(chord_logits(net, up, grid).numpy()[..., :24], told[..., moved], atol=1e-5)
    net.save_weights(str(tmp_path / "chordnet.weights.h5"))
    s = CONFIG.stft
    (tmp_path / "chords.json").write_text(json.dumps({"chordnet": net.get_config(), "sample_rate": RATE,
                                                      "stft": {"n_fft": s.n_fft, "hop_length": s.hop_length}}))
    np.testing.assert_allclose(chord_logits(load_chord_net(str(tmp_path), CONFIG), x, grid).numpy(), told, atol=1e-6)
    # a network without a grid input ignores one
    plain = ChordNet(channels=8, dilations=(1, 2))
    np.testing.assert_allclose(chord_logits(plain, x, grid).numpy(), plain(x).numpy(), atol=1e-6)


def test_a_chord_net_with_note_starts_and_two_stacks_stays_equivariant_and_reloads(tmp_path):
    net = ChordNet(channels=8, dilations=(1, 2), onsets=True, stacks=2, meter=True)
    assert net(np.zeros((1, 37, 14), np.float32)).shape == (1, 37, 25)
    assert ChordNet(channels=8, dilations=(1, 2)).count_params() < net.count_params()
    rng = np.random.default_rng(3)
    x = rng.random((2, 120, 14)).astype(np.float32)
    labels = np.zeros((2, 120), np.int32)
    up, _ = transpose(x, labels, np.array([5, 5]))
    moved = 2 * ((np.arange(24) // 2 - 5) % 12) + np.arange(24) % 2  # the chord 5 semitones up takes this one's score
    np.testing.assert_allclose(net(up).numpy()[..., :24], net(x).numpy()[..., moved], atol=1e-5)
    net.save_weights(str(tmp_path / "chordnet.weights.h5"))
    s = CONFIG.stft
    (tmp_path / "chords.json").write_text(json.dumps({"chordnet": net.get_config(), "sample_rate": RATE,
                                                      "stft": {"n_fft": s.n_fft, "hop_length": s.hop_length}}))
    loaded = load_chord_net(str(tmp_path), CONFIG)
    assert (loaded.onsets, loaded.stacks, loaded.meter) == (True, 2, True)
    np.testing.assert_allclose(loaded(x).numpy(), net(x).numpy(), atol=1e-6)


def test_chord_training_learns_resumes_and_writes_its_folder(tmp_path, chorale_dir, tiny_config):
    out = str(tmp_path / "chords")
    first = train_chord_net(chorale_dir, out, tiny_config, steps=6, batch=4, frames=256, progress=False)
    assert sorted(os.listdir(out)) == ["checkpoints", "chordnet.weights.h5", "chords.json",
                                       "features-train-score.npz", "features-val-score.npz"]
    info = json.loads(open(os.path.join(out, "chords.json")).read())
    assert info["steps"] == 6 and 0.0 <= info["val_accuracy"] <= 1.0
    assert info["labels"] == "score" and info["songs_labelled_from_score"] == info["songs"] == 2  # the score's chords
    arrays = dict(np.load(os.path.join(out, "features-train-score.npz")))
    heard = corpus_arrays(chorale_dir, "train", tiny_config, progress=False, labels="audio")  # read from the stem
    np.testing.assert_array_equal(heard["features"], arrays["features"])
    assert int(heard["from_score"]) == 0 and not np.array_equal(heard["labels"], arrays["labels"])
    with pytest.raises(ValueError, match="labels: expected 'score' or 'audio'"):
        corpus_arrays(chorale_dir, "train", tiny_config, progress=False, labels="guess")
    assert arrays["features"].shape[1] == 14 and arrays["features"].shape[0] == arrays["labels"].shape[0]
    assert arrays["lengths"].sum() == arrays["labels"].shape[0] and (arrays["labels"] != NO_CHORD).mean() > 0.5
    # longer training fits the training songs better than 6 steps did (the loss can fall)
    longer = train_chord_net(chorale_dir, str(tmp_path / "longer"), tiny_config, steps=150, batch=4, frames=256,
                             progress=False)
    assert longer["train_loss"] < first["train_loss"]
    assert frame_accuracy(load_chord_net(str(tmp_path / "longer"), tiny_config), arrays) > frame_accuracy(
        load_chord_net(out, tiny_config), arrays) + 0.05
    # a resumed run continues from its checkpoint to the same weights as an uninterrupted one
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train_chord_net(chorale_dir, a, tiny_config, steps=10, batch=2, frames=64, progress=False)
    resumed = train_chord_net(chorale_dir, a, tiny_config, steps=14, batch=2, frames=64, progress=False)
    straight = train_chord_net(chorale_dir, b, tiny_config, steps=14, batch=2, frames=64, progress=False)
    assert (resumed["steps_run"], straight["steps_run"]) == (4, 14)
    again = train_chord_net(chorale_dir, a, tiny_config, steps=14, batch=2, frames=64, progress=False)
    assert again == resumed  # a finished run re-run keeps its record
    x = arrays["features"][None, :200].astype(np.float32)
    np.testing.assert_allclose(load_chord_net(a, tiny_config)(x).numpy(), load_chord_net(b, tiny_config)(x).numpy(),
                               atol=1e-5)


def test_a_plan_model_exports_with_its_chord_net_and_voices_the_plan(tmp_path, chorale_dir, tiny_config):
    import keras

    from kgan.audio import load as load_audio
    from kgan.export import export, forbidden_ops, load, unknown_inputs, unrestored_variables
    from kgan.inference import Generate
    from kgan.preprocess import preprocess
    from kgan.training import Trainer, make_strategy, write_run_config

    config = tiny_config.override(**{"model.vocal_input": "plan"})
    data, run, base = str(tmp_path / "data"), str(tmp_path / "run"), str(tmp_path / "exports")
    preprocess(chorale_dir, data, config, progress=False)
    keras.utils.set_random_seed(0)
    trainer = Trainer(config, run, make_strategy(1))
    write_run_config(run, config, ["test"])
    trainer.fit(data, steps=2, progress=False)
    with pytest.raises(FileNotFoundError, match="kgan chords train"):
        export(run, base)
    train_chord_net(chorale_dir, os.path.join(run, "chords"), config, steps=3, batch=2, frames=64, progress=False)
    path = export(run, base, griffin_lim_iters=2)
    assert forbidden_ops(path) == [] and unrestored_variables(path) == []  # stock TF Serving restores the chord net
    assert json.loads(open(os.path.join(path, "assets", "kgan_config.json")).read())["chords"] is True

    model, _, _ = load(path)
    song = json.loads(open(os.path.join(chorale_dir, "splits.json")).read())["test"][0]
    vocal, _ = load_audio(os.path.join(chorale_dir, song, "vocals.flac"), config.audio.sample_rate)
    vocal = vocal[: 2 * config.audio.sample_rate][None]
    serve = model.signatures["serving_default"]
    out = serve(vocal=tf.constant(vocal), **unknown_inputs(serve))["accompaniment"].numpy()
    assert out.shape == vocal.shape and np.isfinite(out).all()
    _a_chart_is_the_plan(path, config, vocal, out)
    # kgan chords guess: the chord network's plan as a chart to correct, the same from the run and its export
    from kgan.chart import chart_from_text, guess_chart

    vocal_path = os.path.join(chorale_dir, song, "vocals.flac")
    guessed, bpm, downbeat = guess_chart(path, vocal_path, 120.0, "3/4", 0.25, fit=False)
    assert (bpm, downbeat) == (120.0, 0.25)
    assert guessed == guess_chart(run, vocal_path, 120.0, "3/4", 0.25, fit=False)[0]
    fitted = guess_chart(path, vocal_path, 120.0, "3/4", 0.25)  # on the grid fitted to the singing
    assert abs(fitted[1] / 120.0 - 1) <= 0.05 and chart_from_text(fitted[0], fitted[1], "3/4", fitted[2]).track
    seconds = len(load_audio(vocal_path, config.audio.sample_rate)[0]) / config.audio.sample_rate
    bars = guessed.replace("\n", " | ").strip(" |").split(" | ")
    assert 0.25 + 1.5 * len(bars) >= seconds > 0.25 + 1.5 * (len(bars) - 1)  # every bar of the song, no more
    assert chart_from_text(guessed, 120.0, "3/4", 0.25).track

    # the served spectrogram signature plans each window with the chord net, as the in-memory pipeline does
    local = Generate(trainer.generator, config, 2, chord_net=load_chord_net(os.path.join(run, "chords"), config))
    frames = config.window.frames
    x = local.spec.to_model(tf.constant(vocal))[0, :frames].numpy().T[None, ..., None]  # (1, F, W, 1)
    served = model.signatures["spectrogram"](vocal_spectrogram=tf.constant(x))["accompaniment_spectrogram"].numpy()
    own = trainer.generator(local.with_plan(tf.constant(x)), training=False).numpy()
    np.testing.assert_allclose(served, own, atol=1e-5)
    # and what it is told matters: another plan, another accompaniment
    planner = PlanRenderer(config)
    told = [trainer.generator(tf.concat([x, planner.image(tf.fill([1, frames], chord))], -1), training=False).numpy()
            for chord in (0, 13)]
    assert np.abs(told[0] - told[1]).max() > 1e-3
    with pytest.raises(ValueError, match="needs a chord network"):
        Generate(trainer.generator, config, 2)
    # kgan evaluate --chords score: each song told its score's chords, as a singer who knows them would
    from click.testing import CliRunner

    from cli.main import main

    reports = {}
    for chords in ("guess", "score", "heard"):
        result = CliRunner().invoke(main, ["evaluate", path, chorale_dir, "-o", str(tmp_path / chords), "--baselines",
                                           "", "--chords", chords, "--no-progress"])
        assert result.exit_code == 0, result.output
        reports[chords] = json.loads(open(tmp_path / chords / "report.json").read())
    assert reports["score"]["chords"] == "score"
    fits = [reports[k]["systems"]["model"]["summary"]["chroma_fit"][0] for k in ("guess", "score", "heard")]
    assert fits[0] != fits[1] and fits[0] != fits[2]  # another plan, another accompaniment

    # an export is a starting point too: exported again from its stored weights, at either precision, it
    # serves what it served; told another chord network, another plan
    def spectrogram(export_dir):
        return load(export_dir)[0].signatures["spectrogram"](vocal_spectrogram=tf.constant(x))[
            "accompaniment_spectrogram"].numpy()

    half = export(run, str(tmp_path / "half"), griffin_lim_iters=2, weights="float16")
    for source in (path, half):
        again = export(source, str(tmp_path / f"again-{os.path.basename(os.path.dirname(source))}"),
                       griffin_lim_iters=2, weights=load_json(source)["weights"])
        np.testing.assert_array_equal(spectrogram(again), spectrogram(source))
        assert forbidden_ops(again) == [] and load_json(again)["chordnet"]["channels"] == 48
        assert unrestored_variables(again) == []
    other = os.path.join(str(tmp_path), "other-chords")
    metrics = train_chord_net(chorale_dir, other, config, steps=3, batch=2, frames=64, progress=False, seed=5,
                              channels=8, onsets=True, meter=True, grid=True)
    assert 0 <= metrics["val_accuracy_no_grid"] <= 1
    assert corpus_arrays(chorale_dir, "train", config, os.path.join(other, "features-train-score.npz"))["grid"].any()
    swapped = export(path, str(tmp_path / "swapped"), griffin_lim_iters=2, chords=other)
    assert load_json(swapped)["chordnet"]["onsets"] is True and load_json(swapped)["chordnet"]["meter"] is True
    assert load_json(swapped)["chordnet"]["grid"] is True and forbidden_ops(swapped) == []

    # told the song's beat grid (kgan generate --bpm), the served chord network plans with it; unknown by default
    from kgan.generation import LocalModel, meter_input

    told = LocalModel(swapped)
    assert told.takes_meter and not LocalModel(path).takes_meter
    unknown = told(vocal)
    told.set_meter((0.5, 1.0, 0.2))
    assert np.abs(told(vocal) - unknown).max() > 1e-6
    later = told(vocal[:, 8000:], 8000 / config.audio.sample_rate)  # a chunk 8000 samples in: its downbeat moves
    told.set_meter((0.5, 1.0, 0.2 - 8000 / config.audio.sample_rate))
    np.testing.assert_array_equal(told(vocal[:, 8000:]), later)
    np.testing.assert_allclose(meter_input((0.5, 1.0, 2.0), 1.5), [[0.5, 1.0, 0.5]])
    with pytest.raises(ValueError, match="takes no beat grid"):
        LocalModel(path).set_meter((0.5, 1.0, 0.0))
    _grid_over_grpc(os.path.dirname(swapped), vocal, told)
    assert np.abs(spectrogram(swapped) - spectrogram(path)).max() > 1e-4
    with pytest.raises(ValueError, match="is an export: it has no checkpoints"):
        export(path, str(tmp_path / "nope"), checkpoint=os.path.join(run, "checkpoints", "ckpt-2"))


def _grid_over_grpc(export_base, vocal, local):
    """``kgan serve`` passes a request's beat grid and chord chart through, checks them, and serves what the
    export does."""
    from kgan.chart import ChordChart
    from kgan.client import RemoteModel
    from kgan.server import serve
    from tests.conftest import assert_rejected

    server, port = serve(export_base, "127.0.0.1", 0, max_seconds=5.0)
    try:
        remote = RemoteModel(f"127.0.0.1:{port}")
        remote.set_meter(local.meter)
        np.testing.assert_array_equal(remote(vocal), local(vocal))
        for meter, text in (([[0.01, 1.0, 0.0]], "each row is zeros (unknown) or"),
                            ([[0.5, 1.0, 0.0]] * 2, "one grid, or one per row (1); got 2")):
            assert_rejected(port, {"vocal": vocal, "meter": np.array(meter, np.float32)}, text)
        chart = ChordChart(((0.0, 0.5, 7), (0.5, 2.0, 16)))
        remote.set_chart(chart)
        local.set_chart(chart)
        np.testing.assert_array_equal(remote(vocal), local(vocal))
        local.set_chart(None)
        for chords, text in (([[0, 25]], "unknown id(s) [25]"), ([[0]] * 2, "one chart, or one per row (1); got 2"),
                             (np.zeros((1, 10**5)), "at most")):
            assert_rejected(port, {"vocal": vocal, "chords": np.array(chords, np.int32)}, text)
        remote.close()
    finally:
        server.stop(grace=None)


def _a_chart_is_the_plan(path, config, vocal, guessed):
    """Told a chord chart (kgan generate --chords), the export plays its chords instead of the chord network's:
    the plan is the chart's wherever it speaks, the guess elsewhere, chunk by chunk."""
    from kgan.chart import ChordChart
    from kgan.export import restore_run_or_export
    from kgan.generation import LocalModel
    from kgan.inference import Generate

    local = LocalModel(path)
    assert local.takes_chords
    np.testing.assert_array_equal(local(vocal), guessed)  # no chart: the network's own plan, as before
    rate = config.audio.sample_rate
    chart = ChordChart(((0.0, 1.0, 7), (1.0, 2.0, 16)))  # E-flat minor for a second, then A-flat
    local.set_chart(chart)
    charted = local(vocal)
    assert np.abs(charted - guessed).max() > 1e-4
    local.set_chart(ChordChart(()))  # a chart of only '?': the guesses everywhere
    np.testing.assert_array_equal(local(vocal), guessed)
    # a chunk that starts 1 s in hears the chart from there on: as told a chart shifted by a second
    local.set_chart(chart)
    later = local(vocal[:, rate:], 1.0)
    local.set_chart(ChordChart(((-1.0, 0.0, 7), (0.0, 1.0, 16))))
    np.testing.assert_array_equal(local(vocal[:, rate:]), later)
    # in the graph: the plan is the chart's triad where it speaks and the network's where it does not
    generator, _, chord_net, _ = restore_run_or_export(path)
    pipeline = Generate(generator, config, 2, chord_net=chord_net)
    normalised = pipeline.spec.to_model(tf.constant(vocal))
    frames = int(normalised.shape[1])
    told = np.full((1, frames), -1, np.int32)
    told[0, : frames // 2] = 7
    plan = pipeline.plan(normalised, chords=told).numpy()
    np.testing.assert_array_equal(plan[:, : frames // 2], pipeline.render_plan(tf.fill([1, frames // 2], 7)).numpy())
    np.testing.assert_array_equal(plan[:, frames // 2 :], pipeline.plan(normalised).numpy()[:, frames // 2 :])


def load_json(export_dir):
    with open(os.path.join(export_dir, "assets", "kgan_config.json"), encoding="utf-8") as f:
        return json.load(f)


def test_a_soft_plan_weighs_each_triad_by_its_probability():
    planner = PlanRenderer(CONFIG)
    sure = np.full((1, 4, 25), -30.0, np.float32)
    sure[..., 19] = 30.0  # A minor, certainly
    np.testing.assert_allclose(planner.soft_image(sure).numpy(), planner.image(tf.fill([1, 4], 19)).numpy(), atol=1e-5)
    torn = np.full((1, 4, 25), -30.0, np.float32)
    torn[..., 0] = torn[..., 14] = 0.0  # C major or G major, half and half: G (in both) strongest, then C E D B
    plane = planner.soft_image(torn).numpy()[0, :, 0, 0]
    bin_hz = RATE / CONFIG.stft.n_fft

    def level(hz):  # the two bins a partial at hz is spread over
        return plane[int(hz / bin_hz): int(hz / bin_hz) + 2].max()

    g, c, b, f_sharp = level(784.0), level(1046.5), level(987.8), level(740.0)  # G5 C6 B5 F#5
    assert g > c > -0.9 and g > b > -0.9 and f_sharp < -0.9
    assert np.all(planner.soft_image(np.where(np.arange(25) == NO_CHORD, 30.0, -30.0)[None, None]
                                     .astype(np.float32)).numpy() == -1.0)  # no chord: nothing lit


def test_viterbi_decoding_finds_the_best_penalised_path_and_holds_a_chord_through_a_wobble():
    import itertools

    from kgan.chords import viterbi_chords

    def best(log_p, penalty):  # every path, scored
        paths = itertools.product(range(log_p.shape[1]), repeat=len(log_p))
        return max(paths, key=lambda c: sum(log_p[i, k] for i, k in enumerate(c))
                   - penalty * sum(a != b for a, b in zip(c, c[1:])))

    rng = np.random.default_rng(0)
    for _ in range(12):
        steps, chords, pool = int(rng.integers(1, 6)), int(rng.integers(2, 4)), 3
        logits = np.repeat(rng.normal(size=(2, steps, chords)), pool, axis=1).astype(np.float32)[:, :-1]
        penalty = float(rng.uniform(0.0, 3.0))
        got = viterbi_chords(logits, penalty, pool).numpy()
        assert got.shape == logits.shape[:2]
        for b in range(2):
            expected = np.repeat(best(tf.nn.log_softmax(logits[b, ::pool]).numpy(), penalty), pool)[:-1]
            np.testing.assert_array_equal(got[b], expected)
    # C major held with one step leaning to G: argmax flips, a penalty holds C; a long G still wins
    held = np.full((1, 10, 25), -5.0, np.float32)
    held[0, :, 0] = 2.0
    held[0, 4, 14] = 3.0
    held[0, 7:, 14] = 4.0
    assert viterbi_chords(held, 0.0, 1).numpy()[0].tolist() == [0] * 4 + [14] + [0] * 2 + [14] * 3
    assert viterbi_chords(held, 2.0, 1).numpy()[0].tolist() == [0] * 7 + [14] * 3
