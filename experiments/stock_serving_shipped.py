"""Export the shipped model again so that stock TF Serving restores every variable it reads.

    python experiments/stock_serving_shipped.py OUT_DIR [--install]

Exports made before 2026-12-04 held the chord network as a Keras 3 model inside the serving module.
``tf.saved_model.load`` runs them, but TF1-style loaders (stock TF Serving's C++ loader, ``saved_model_cli
run``) restore its 18 variables into other handles than the graph reads, so every request would fail
with "Could not find variable embed/kernel" (keras-team/keras#20095; ``kgan.export.unrestored_variables``).

1. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --compute both`` with the
   installed export's own Griffin-Lim (iterations and algorithm): every model now reaches the graph through
   ``StoredWeights``' plain variables. Weights, chord network, levels and high band are unchanged.
2. Checks: no unrestored variable; the new export's output equals the installed one's (every signature the
   CLI runs, 10 and 40 s of a sung line); ``saved_model_cli run`` answers ``serving_default``.
3. With ``--install``: the export replaces the installed one; the card and ``metrics.json``
   (``stock_serving``) are updated.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT, done, kgan  # noqa: E402
from pretrained import PACKAGE, install_with_section  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--install", action="store_true")
    args = parser.parse_args(argv)
    import numpy as np
    import tensorflow as tf

    from kgan.export import export_meta, load, unknown_inputs, unrestored_variables

    out = os.path.abspath(args.out)
    installed = os.path.join(PACKAGE, "export", "1")
    meta = export_meta(installed)
    if not done(f"{out}/export/1"):
        kgan("export", installed, f"{out}/export", "--weights", "float16", "--compute", meta.get("compute", "float32"),
             "--griffin-lim-iters", str(meta["griffin_lim_iters"]),
             "--griffin-lim-algorithm", meta.get("griffin_lim_algorithm", "fast"))
    new = f"{out}/export/1"
    before, after = unrestored_variables(installed), unrestored_variables(new)
    if after:
        raise SystemExit(f"{new}: still unrestored: {after}")
    old_model, config, _ = load(installed)
    new_model = load(new)[0]
    rate = config.audio.sample_rate
    differences = {}
    for seconds in (10, 40):
        t = np.arange(seconds * rate) / rate
        vocal = tf.constant((0.3 * np.sin(2 * np.pi * 330 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))))
                            .astype(np.float32)[None])
        for signature in ("serving_default", "serving_bfloat16"):
            a, b = (m.signatures[signature](vocal=vocal, **unknown_inputs(m.signatures[signature]))["accompaniment"]
                    .numpy() for m in (old_model, new_model))
            differences[f"{signature}, {seconds} s"] = float(np.max(np.abs(a - b)))
    np.save(f"{out}/vocal.npy", np.zeros((1, 2 * rate), np.float32))
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    defaults = unknown_inputs(new_model.signatures["serving_default"])
    exprs = ";".join(f"{k}={v.numpy().tolist()}" for k, v in defaults.items())
    ran = subprocess.run([cli, "run", "--dir", new, "--tag_set", "serve", "--signature_def", "serving_default",
                          "--inputs", f"vocal={out}/vocal.npy", "--input_exprs", exprs,
                          "--outdir", f"{out}/cli", "--overwrite"], capture_output=True, text=True)
    if ran.returncode:
        raise SystemExit(f"saved_model_cli run failed: {ran.stderr.strip().splitlines()[-1]}")
    worst = max(differences.values())
    section = ["## Stock TF Serving restores every variable", "",
               "Exports before this one held the chord network as a Keras 3 model inside the serving module. "
               "`tf.saved_model.load` (what `kgan generate`, `kgan serve` and `kgan evaluate` use) ran them, but "
               "TF1-style loaders (stock TF Serving's C++ loader, `saved_model_cli run`) restored its "
               f"{len(before)} variables into other handles than the graph reads, so every request to stock TF "
               "Serving would have failed with \"Could not find variable embed/kernel\" (the Keras issue "
               "keras-team/keras#20095). The export was made again from its own stored weights "
               "(`experiments/stock_serving_shipped.py`): every model now reaches the graph through plain "
               "variables, `kgan export` refuses an export with a variable its restore op does not fill "
               "(`kgan.export.unrestored_variables`), and `saved_model_cli run` answers `serving_default`. "
               + ("Its output is the export before it's, bit for bit" if worst == 0 else
                  f"Its output is the export before it's to within {worst:.1g} of full scale")
               + " (both precisions' signatures, on 10 s and 40 s of a sung line).", ""]
    print("\n".join(section))
    if args.install:
        install_with_section(new, section, "stock_serving",
                             {"unrestored_before": before, "unrestored_after": after, "max_difference": differences})


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
