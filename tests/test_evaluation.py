import numpy as np
import pytest

from kgan import evaluation as ev

RATE = 22050
# C major: I - IV - V - I (MIDI notes), one chord per second
PROGRESSION = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67)]


def note(midi, seconds, rate=RATE, decay=True):
    t = np.arange(int(seconds * rate)) / rate
    f = 440.0 * 2 ** ((midi - 69) / 12)
    env = np.exp(-3 * t) if decay else np.ones_like(t)
    return env * sum(np.sin(2 * np.pi * k * f * t) / k for k in (1, 2, 3))


def progression(shift=0, chords=PROGRESSION, seconds=1.0):
    return (0.1 * np.concatenate([sum(note(m + shift, seconds) for m in chord) for chord in chords])).astype(np.float32)


@pytest.fixture(scope="module")
def song():
    return progression()


def test_identical_signals_score_perfectly(song):
    assert ev.chroma_fit(song, song, RATE) == pytest.approx(1.0, abs=1e-6)
    assert ev.chroma_motion(song, song, RATE) == pytest.approx(1.0, abs=1e-6)
    assert ev.key_score(song, song, RATE) == 1.0
    assert ev.onset_correlation(song, song, RATE) == pytest.approx(1.0, abs=1e-6)
    assert ev.log_spectral_distance(song, song) == 0.0
    assert ev.spectral_convergence(song, song) == 0.0


def test_key_of_the_progression_and_a_fifth_away(song):
    assert ev.estimate_key(song, RATE) == "C major"
    up_a_fifth = progression(7)
    assert ev.estimate_key(up_a_fifth, RATE) == "G major"
    assert ev.key_score(up_a_fifth, song, RATE) == 0.5  # mir_eval: a fifth apart scores 0.5
    assert ev.chroma_fit(progression(1), song, RATE) < ev.chroma_fit(song, song, RATE) - 0.3


def test_silence_and_a_drone_get_no_harmony_credit(song):
    silence = np.zeros_like(song)
    assert ev.chroma_fit(silence, song, RATE) == 0.0
    assert ev.chroma_motion(silence, song, RATE) == 0.0
    drone = (0.1 * sum(note(m, len(song) / RATE, decay=False) for m in (48, 55, 60, 64))).astype(np.float32)
    assert ev.chroma_fit(drone, song, RATE) > 0.5  # the right key fools the plain cosine ...
    assert abs(ev.chroma_motion(drone, song, RATE)) < 0.1  # ... but not the motion cosine (beating partials: ~0.07)
    assert ev.onset_correlation(silence, song, RATE) == 0.0


def test_spectral_distances_have_known_values_for_a_gain_change(song):
    noise = 0.1 * np.random.default_rng(0).standard_normal(3 * RATE).astype(np.float32)  # every bin above the floor
    assert ev.log_spectral_distance(0.9 * noise, noise) == pytest.approx(-20 * np.log10(0.9), abs=0.01)  # 0.915 dB
    assert ev.spectral_convergence(0.9 * song, song) == pytest.approx(0.1, abs=1e-4)
    assert ev.log_spectral_distance(0.9 * song, song) < 0.95  # clamped empty bins only lower it
    far = progression(5)
    assert ev.log_spectral_distance(far, song) > 5 and ev.spectral_convergence(far, song) > 0.5
    assert ev.level_error_db(song, song) == pytest.approx(0.0, abs=1e-9)
    assert ev.level_error_db(0.5 * song, song) == pytest.approx(20 * np.log10(2), abs=1e-4)  # 6.02 dB either way
    assert ev.level_error_db(2.0 * song, song) == pytest.approx(20 * np.log10(2), abs=1e-4)


def test_beat_f_measure_rewards_the_same_pulse():
    clicks = np.zeros(8 * RATE, np.float32)
    for start in range(0, len(clicks) - 2000, RATE // 2):  # 120 bpm
        clicks[start : start + 2000] += np.exp(-np.arange(2000) / 200.0) * np.sin(np.arange(2000) * 0.3)
    assert ev.beat_f_measure(clicks, clicks, RATE) == pytest.approx(1.0)
    shifted = np.roll(clicks, RATE // 4)  # off-beat by a quarter second
    assert ev.beat_f_measure(shifted, clicks, RATE) < 0.5


def test_frechet_distance_is_zero_for_the_same_set_and_grows_with_a_shift():
    a = np.random.default_rng(0).standard_normal((200, 5))
    assert ev.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert ev.frechet_distance(a, a + 1.0) == pytest.approx(5.0, rel=1e-6)  # |mean shift|^2 = 5


def test_true_pairs_score_better_than_shuffled_pairs():
    songs = [progression(shift, seconds=0.5) for shift in (0, 2, 5, 7, 9)]
    refs = np.stack([ev.clip_embedding(s, RATE) for s in songs])
    noisy = np.stack([ev.clip_embedding(s + 0.002 * np.random.default_rng(i).standard_normal(len(s)).astype(np.float32),
                                        RATE) for i, s in enumerate(songs)])
    assert refs.shape == (5, 78)
    true_pairs = ev.pairing_accuracy(noisy, refs)
    shuffled = ev.pairing_accuracy(noisy[[1, 2, 3, 4, 0]], refs)
    assert true_pairs == 1.0 and shuffled < 0.5
    with pytest.raises(ValueError, match="at least 2 songs"):
        ev.pairing_accuracy(refs[:1], refs[:1])


def test_baselines_have_the_vocal_length_and_the_intended_harmony(song):
    drone = ev.drone_baseline(song, RATE)
    running = ev.running_chroma_baseline(song, RATE, seconds=1.0)
    assert len(drone) == len(running) == len(song)
    assert ev.key_score(drone, song, RATE) >= 0.5  # the key of the vocal, or a fifth from it
    assert ev.chroma_motion(running, song, RATE) > ev.chroma_motion(drone, song, RATE) + 0.2  # it follows chords
    retrieval = ev.Retrieval([(progression(7), np.ones(10, np.float32)), (song, np.full(10, 2.0, np.float32))], RATE)
    np.testing.assert_array_equal(retrieval(progression(0), RATE), np.full(len(song), 2.0))  # nearest key, tiled
    assert ev.mean_ci([1.0, 1.0, 1.0]) == (1.0, 0.0)


@pytest.mark.slow
def test_cli_writes_the_report_with_baselines(exported, chorale_dir, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "cli.main", "evaluate", exported[1], chorale_dir, "-o", str(out), "--split", "",
           "--max-seconds", "6", "--baselines", "silence,echo,drone,running-chroma,harmoniser", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert set(report["systems"]) == {"model", "silence", "echo", "drone", "running-chroma", "harmoniser"}
    assert report["pairing_check"]["true_pairs"] > report["pairing_check"]["shuffled_pairs"]
    assert report["systems"]["silence"]["summary"]["chroma_fit"][0] == 0.0
    assert "| model |" in (out / "report.md").read_text()
    assert (out / "metrics.png").stat().st_size > 10_000 and len(list((out / "triptychs").glob("*.png"))) == 3


def test_harmoniser_baseline_follows_a_change_from_the_tonic_to_the_subdominant():
    from kgan.evaluation import Harmoniser, _chroma_tone, chroma_motion, drone_baseline
    from tests.test_features import RATE, _envelope_bright, _sing

    melody = [60, 64, 67, 72] * 2 + [65, 69, 72, 77] * 2  # C E G C twice, then F A C F twice (0.4 s a note)
    vocal = _sing(melody, _envelope_bright)
    frames = len(vocal) // 512
    truth = np.zeros((12, frames))
    truth[[0, 4, 7], : frames // 2] = 1.0
    truth[[5, 9, 0], frames // 2:] = 1.0
    accompaniment = _chroma_tone(truth, len(vocal), RATE)
    harmoniser = Harmoniser()
    notes = harmoniser.notes(vocal, RATE)
    quarter = notes.shape[1] // 4
    assert set(np.flatnonzero(notes[:, quarter])) == {0, 4, 7}  # C major, then F major
    assert set(np.flatnonzero(notes[:, 3 * quarter])) == {5, 9, 0}
    played = harmoniser(vocal, RATE)
    assert played.shape == vocal.shape
    assert chroma_motion(played, accompaniment, RATE) > 0.5 > chroma_motion(drone_baseline(vocal, RATE), accompaniment, RATE)
    assert not harmoniser(np.zeros(RATE * 2, np.float32), RATE).any()  # no melody: silence
