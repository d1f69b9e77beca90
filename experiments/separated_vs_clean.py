"""Train on separated vocals or on clean ones, and score both on clean vocals.

    python experiments/separated_vs_clean.py CORPUS_DIR OUT_DIR [--train-songs 30] [--val-songs 8] [--steps 400]

CORPUS_DIR is a ``kgan corpus chorales`` folder (stems, ``mixture.flac`` and
``splits.json``). The first train and val songs are taken from it twice: as
clean stems, and as what ``kgan separate`` (SIMM) makes of their mixtures
(separated vocal and separated accompaniment, as a user with finished songs
gets them). Four short runs of the default preset (clean / separated data x
trainer input noise on / off) start from the same seed; each is scored by the
generator's L1 on the clean validation windows, after the batch-norm
calibration ``kgan train`` ends with (and, for comparison, before it). Prints
a Markdown table and writes OUT_DIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--train-songs", type=int, default=30)
    parser.add_argument("--val-songs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.05, help="train.vocal_noise_std of the runs with noise")
    args = parser.parse_args(argv)

    from kgan.config import Config, get_preset
    from kgan.dataset import read_metadata
    from kgan.preprocess import preprocess
    from kgan.separation import separate_files
    from kgan.training import Trainer

    with open(os.path.join(args.corpus, "splits.json"), encoding="utf-8") as f:
        corpus_splits = json.load(f)
    splits = {"train": corpus_splits["train"][: args.train_songs], "val": corpus_splits["val"][: args.val_songs]}
    clean = os.path.join(args.out, "clean")
    os.makedirs(clean, exist_ok=True)
    for name in splits["train"] + splits["val"]:
        link = os.path.join(clean, name)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(os.path.join(args.corpus, name)), link)
    for folder in (clean, os.path.join(args.out, "separated")):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "splits.json"), "w", encoding="utf-8") as f:
            json.dump(splits, f)
    songs = [(n, os.path.join(args.corpus, n, "mixture.flac")) for n in splits["train"] + splits["val"]]
    _, errors = separate_files(songs, os.path.join(args.out, "separated"), "simm", skip_existing=True)
    if errors:
        sys.exit("\n".join(errors))
    data = {}
    for kind in ("clean", "separated"):
        data[kind] = os.path.join(args.out, kind + "-tfr")
        preprocess(os.path.join(args.out, kind), data[kind], get_preset("default"), progress=False)

    config = Config.from_dict(read_metadata(data["clean"])["config"])
    results = []
    for kind in ("clean", "separated"):
        for noise in (args.noise, 0.0):
            name = f"{kind}-noise{noise:g}"
            cfg = config.override(**{"train.vocal_noise_std": noise, "train.steps": args.steps,
                                     "train.image_every": args.steps, "train.checkpoint_every": args.steps,
                                     "train.bn_calibration_batches": 0})
            trainer = Trainer(cfg, os.path.join(args.out, "runs", name))
            trainer.fit(data[kind], progress=False)
            row = {"training vocals": kind, "input noise": noise, "steps": args.steps,
                   "val L1 (clean), moving BN statistics": trainer.validation_l1(data["clean"], max_batches=1000)}
            trainer.calibrate_batch_norm(data[kind], batches=100)  # what kgan train does after its last step
            row["val L1 (clean)"] = trainer.validation_l1(data["clean"], max_batches=1000)
            row["train windows"] = read_metadata(data[kind])["counts"]["train"]["windows"]
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print("| training vocals | input noise | val L1 on clean vocals | (moving BN statistics) | training windows |\n"
          "|---|---|---|---|---|")
    for r in results:
        print(f"| {r['training vocals']} | {r['input noise']:g} | {r['val L1 (clean)']:.4f} | "
              f"{r['val L1 (clean), moving BN statistics']:.4f} | {r['train windows']} |")


if __name__ == "__main__":
    main()
