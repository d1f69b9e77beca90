"""Send one vocal file to a TF Serving (or `kgan serve`) gRPC server and write the accompaniment.

    python serving/client.py my_vocal.wav accompaniment.wav --server 127.0.0.1:8500

The same client is behind `kgan generate --server`, which also writes the remix and a picture.
"""

import argparse

from kgan import audio
from kgan.client import RemoteModel
from kgan.inference import generate_song


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("vocal")
    parser.add_argument("output", help="a .wav or .flac path")
    parser.add_argument("--server", default="127.0.0.1:8500")
    parser.add_argument("--model-name", default="kgan")
    args = parser.parse_args()
    model = RemoteModel(args.server, args.model_name)
    vocal, rate = audio.load(args.vocal, model.sample_rate)
    accompaniment = generate_song(model, vocal, rate, progress=True)
    rate = model.output_rate  # twice the vocal's for an export with a high band
    peak = float(abs(accompaniment).max()) if accompaniment.size else 0.0
    # a level-calibrated output can peak above full scale: scale it, do not clip it
    accompaniment = accompaniment * audio.headroom_gain(peak)
    audio.write(args.output, accompaniment, rate)
    print(f"wrote {args.output} ({len(accompaniment) / rate:.1f} s at {rate} Hz)")


if __name__ == "__main__":
    main()
