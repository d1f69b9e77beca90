import numpy as np
import pytest
import tensorflow as tf

from kgan.dataset import windows_dataset
from kgan.preprocess import preprocess
from tests.conftest import make_song


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tiny_config):
    root = tmp_path_factory.mktemp("ds")
    rate = tiny_config.audio.sample_rate
    for i, seconds in enumerate((3.0, 5.0, 2.0)):
        make_song(root / "songs" / f"train{i}", rate, seconds=seconds)
    make_song(root / "songs" / "val0", rate, seconds=3.0)
    (root / "songs" / "splits.json").write_text('{"train": ["train0", "train1", "train2"], "val": ["val0"]}')
    preprocess(str(root / "songs"), str(root / "out"), tiny_config, progress=False)
    return str(root / "out")


def test_training_batches_have_the_model_shape_and_range(data_dir, tiny_config):
    ds = windows_dataset(data_dir, "train", tiny_config, global_batch_size=6)
    bins, frames = tiny_config.stft.num_bins, tiny_config.window.frames
    assert ds.element_spec[0].shape == (6, bins, frames, 1)  # static: drop_remainder
    for vocal, accompaniment in ds.take(5):
        for x in (vocal, accompaniment):
            assert x.dtype == tf.float32 and x.shape == (6, bins, frames, 1)
            assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
        assert float(tf.reduce_mean(tf.abs(vocal - accompaniment))) > 0.01


def test_training_pipeline_is_deterministic_for_a_seed(data_dir, tiny_config):
    def first(seed):
        return [v.numpy() for v, _ in windows_dataset(data_dir, "train", tiny_config, 4, seed=seed).take(3)]

    a, b, c = first(1), first(1), first(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_eval_pipeline_tiles_each_segment_once_in_order(data_dir, tiny_config):
    ds = windows_dataset(data_dir, "val", tiny_config, global_batch_size=1, training=False)
    windows = [v.numpy() for v, _ in ds]
    hop_seconds = tiny_config.stft.hop_length / tiny_config.audio.sample_rate
    expected = int(3.0 / hop_seconds) // tiny_config.window.frames
    assert abs(len(windows) - expected) <= 1
    assert [w.tobytes() for w in windows] == [v.numpy().tobytes() for v, _ in ds]


def test_pipeline_distributes_over_a_strategy(data_dir, tiny_config):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    ds = windows_dataset(data_dir, "train", tiny_config, global_batch_size=4)
    dist = strategy.experimental_distribute_dataset(ds)
    vocal, accompaniment = next(iter(dist))
    assert strategy.experimental_local_results(vocal)[0].shape[0] == 4


def test_missing_split_is_a_clear_error(tmp_path, tiny_config):
    with pytest.raises(FileNotFoundError, match="dataset.json: not found; run `kgan preprocess`"):
        windows_dataset(str(tmp_path), "train", tiny_config)


def test_score_chords_travel_with_their_windows(tmp_path, chorale_dir, tiny_config):
    """A corpus song's chord_track goes into its shard and comes out aligned with each window; a song without
    a score gives -1 (read its chords from the audio)."""
    import json
    import os
    import shutil

    from kgan.chords import track_labels
    from kgan.dataset import parse_segment

    songs = tmp_path / "songs"
    shutil.copytree(chorale_dir, songs)
    folders = sorted(p for p in songs.iterdir() if p.is_dir())
    (songs / "splits.json").write_text(json.dumps({"train": [p.name for p in folders]}))
    bare = folders[0]
    (bare / "song.json").unlink()
    out = str(tmp_path / "out")
    summary = preprocess(str(songs), out, tiny_config, progress=False)
    sources = {s["name"]: s["chords"] for s in summary["songs"]}
    assert sources[bare.name] == "audio" and sorted(sources.values()).count("score") == len(sources) - 1
    frames, bins = tiny_config.window.frames, tiny_config.stft.num_bins
    seen = {"score": 0, "audio": 0}
    for song in json.load(open(os.path.join(out, "dataset.json")))["songs"]:
        track = json.load(open(songs / song["name"] / "song.json"))["chord_track"] if song["chords"] == "score" else None
        for record in tf.data.TFRecordDataset(os.path.join(out, song["shard"])):
            vocal, _, chords = parse_segment(record, bins, chords=True)
            start = tf.train.Example.FromString(record.numpy()).features.feature["start_frame"].int64_list.value[0]
            if track is None:
                assert (chords.numpy() == -1).all()
            else:
                np.testing.assert_array_equal(chords.numpy(), track_labels(track, start + vocal.shape[0],
                                                                           tiny_config)[start:])
            seen[song["chords"]] += 1
    assert seen["score"] > 0 and seen["audio"] > 0
    ds = windows_dataset(out, "train", tiny_config, 4, chords=True)
    vocal, accompaniment, style, chords = next(iter(ds))
    assert chords.dtype == tf.int32 and chords.shape == (4, frames) and style.shape == (4,)
    assert set(np.unique(chords.numpy())) <= set(range(-1, 25))
