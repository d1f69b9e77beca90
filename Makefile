# Set-up and everyday targets. Everything installs into .venv from the package registry.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= build/demo
DEMO_SONGS ?= 12
DEMO_FOLK ?= 24
DEMO_STEPS ?= 300

.PHONY: install demo demo-chart test test-fast bench pretrained clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[corpus,serving,evaluation,beam,dev]'
	# tinysoundfont renders the corpus offline; --no-deps skips pyaudio (live playback only, needs PortAudio)
	$(BIN)/pip install --quiet --no-deps 'tinysoundfont==0.3.7'
	@command -v text2wave >/dev/null || echo "note: Festival is not installed, so corpora have no sung voice" \
	  "(Debian: apt-get install festival festvox-kallpc16k)"
	touch $@

## demo: render songs, accompany a test vocal with the shipped model, then train your own briefly, export, generate
demo: install
	$(BIN)/kgan corpus build $(DEMO)/corpus --chorales $(DEMO_SONGS) --folk $(DEMO_FOLK) --jobs 2
	# the shipped model first: no training needed
	song=$$($(BIN)/python -c "import json; print(json.load(open('$(DEMO)/corpus/splits.json'))['test'][0])") && \
	$(BIN)/kgan generate $(DEMO)/corpus/$$song/vocals.flac -o $(DEMO)/karaoke-pretrained/$$song --style piano
	$(MAKE) demo-chart
	# then train your own
	$(BIN)/kgan preprocess $(DEMO)/corpus $(DEMO)/data --plot 4
	$(BIN)/kgan train $(DEMO)/data $(DEMO)/run --steps $(DEMO_STEPS) --set train.image_every=100
	$(BIN)/python -m kgan.plots $(DEMO)/run $(DEMO)/run/loss.png
	rm -rf $(DEMO)/exports && $(BIN)/kgan export $(DEMO)/run $(DEMO)/exports
	song=$$($(BIN)/python -c "import json; print(json.load(open('$(DEMO)/corpus/splits.json'))['test'][0])") && \
	$(BIN)/kgan generate $(DEMO)/corpus/$$song/vocals.flac -o $(DEMO)/karaoke/$$song --model $(DEMO)/exports
	@echo "demo: the shipped model's karaoke track of a held-out test song in $(DEMO)/karaoke-pretrained,"
	@echo "      window pictures in $(DEMO)/data/plots, loss curves in $(DEMO)/run/loss.png,"
	@echo "      karaoke track, remix and picture of a held-out test song in $(DEMO)/karaoke,"
	@echo "      TensorBoard: $(BIN)/tensorboard --logdir $(DEMO)/run/logs"

## demo-chart: the shipped model's chord guesses for a test song written as a chart, then played back from it
demo-chart: install
	song=$$($(BIN)/python -c "import json; print(json.load(open('$(DEMO)/corpus/splits.json'))['test'][0])") && \
	grid=$$($(BIN)/python -c "import json, sys; from kgan.harmony import song_meter; \
	  info = json.load(open(sys.argv[1])); beat, _, downbeat = song_meter(info); \
	  print('--bpm %.3f --meter %s --downbeat %.3f' % (60 / beat, info.get('meter') or '4/4', downbeat))" \
	  $(DEMO)/corpus/$$song/song.json) && \
	$(BIN)/kgan chords guess $(DEMO)/corpus/$$song/vocals.flac $$grid -o $(DEMO)/$$song-chords.txt && \
	$(BIN)/kgan generate $(DEMO)/corpus/$$song/vocals.flac -o $(DEMO)/karaoke-chart/$$song --style piano $$grid \
	  --chords-file $(DEMO)/$$song-chords.txt
	@echo "demo-chart: the chords it guessed in $(DEMO)/*-chords.txt; correct any bar and run kgan generate"
	@echo "            --chords-file again (the command above) to hear it play yours"

## test: the whole suite, slow end-to-end tests included
test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

## pretrained: build the model that ships with kgan (corpus, chord net, ~1.5 h of training on 2 cores, evaluation, card)
pretrained: install
	$(BIN)/python experiments/pretrained.py build/pretrained --steps 3000 --chord-steps 6000 \
	  --set model.vocal_input=plan --install

bench: install
	$(BIN)/python benchmarks/preprocess.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/stages.py
	$(BIN)/python benchmarks/generator_cost.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/separation.py
	$(BIN)/python benchmarks/corpus.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf build .pytest_cache
