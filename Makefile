# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
OUT     ?= out
STAMP   := $(VENV)/.installed

.PHONY: setup system-deps demo test lint sample-bundle train-sample train-reference clean

setup: $(STAMP)

# torch first and pinned: an unpinned torch (or one pulled in by another package) drags in
# several GB of CUDA wheels; 2.13.0 is the CPU wheel this machine kind provides.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[export,eval,onnxruntime,flash,dev,openvino,litert,bench,pipeline,tflite,scale]"
	# ByteTrack for `edgekit run`: --no-deps, as trackers asks for the GUI opencv-python
	# (it would overwrite the headless cv2); its real dependencies come with [pipeline].
	$(BIN)/pip install -q -c constraints.txt --no-deps trackers
	# ultralytics, for the tests that read Ultralytics checkpoints only: never a dependency
	# of edgekit (AGPL-3.0). --no-deps: it asks for the GUI opencv-python and for torchvision
	# (CUDA builds only on PyPI); reading a checkpoint needs nothing else the venv lacks.
	$(BIN)/pip install -q -c constraints.txt --no-deps ultralytics
	# ONNX -> TFLite without TensorFlow (export/onnx_torch.py): --no-deps, as onnx2torch asks
	# for torchvision, whose wheel here is a CUDA build that fails to import beside the CPU
	# torch (it is needed only for NonMaxSuppression/RoiAlign, which edgekit then refuses).
	$(BIN)/pip install -q -c constraints.txt --no-deps onnx2torch
	touch $(STAMP)

# The main job on the embedded sample detector. The export step's leading '-' lets the demo go
# on when an artifact misses the accuracy gate: the export still exits 1 and says so loudly,
# the failing artifact stays in the bundle marked "failed", and eval/predict/bench skip it.
demo: setup
	$(BIN)/edgekit sample-data $(OUT)/val --count 300 --seed 12345
	$(BIN)/edgekit sample-data $(OUT)/calib --count 200 --seed 4242
	$(BIN)/edgekit export sample -o $(OUT)/sample-bundle --to onnx,openvino,tflite \
		--precision fp32,fp16,int8 --val $(OUT)/val --calib $(OUT)/calib --json $(OUT)/export.json
	$(BIN)/edgekit info $(OUT)/sample-bundle
	$(BIN)/edgekit eval $(OUT)/sample-bundle --data $(OUT)/val --json $(OUT)/eval.json
	$(BIN)/edgekit sample-data $(OUT)/scenes --count 8 --seed 777
	$(BIN)/edgekit predict $(OUT)/sample-bundle $(OUT)/scenes/images -o $(OUT)/predictions
	$(BIN)/edgekit bench $(OUT)/sample-bundle --matrix --threads 2 --runs 200 --no-history \
		--json $(OUT)/bench.json --csv $(OUT)/bench.csv --markdown $(OUT)/bench.md \
		--plot $(OUT)/bench.png
	$(BIN)/edgekit run $(OUT)/sample-bundle --source "testsrc://?fps=15&seed=3&objects=5" \
		--config samples/vehicle_counting.yaml --duration 15 --quiet \
		--sink $(OUT)/live.mp4 --sink $(OUT)/events.jsonl --json $(OUT)/run.json
	@echo
	@echo "Outputs in $(OUT)/:"
	@echo "  sample-bundle/          the bundle: 3 formats x 3 precisions, each gated on measured mAP"
	@echo "  sample-bundle/export_report.json  the accuracy gate, per artifact"
	@echo "  eval.json               mAP@0.5 and mAP@0.5:0.95 (overall and per class)"
	@echo "  predictions/            annotated scenes and detections.jsonl"
	@echo "  bench.md, bench.png     latency/accuracy per artifact on this machine (bench.json, .csv)"
	@echo "  live.mp4, events.jsonl  the sample model live on a generated stream (run.json: fps, latency)"

# The Debian packages the tests drive for real (ffmpeg, sshd, an RTSP server, mosquitto,
# chromium): installed when root or passwordless sudo allows, otherwise named (tools/).
system-deps:
	tools/system-deps.sh

test: setup system-deps
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check edgekit export devices tests samples benchmarks

# Rebuild the shipped sample bundle from the shipped weights (after retraining).
sample-bundle: setup
	$(BIN)/edgekit export sample -o edgekit/sample/bundle --to onnx --precision fp32

# Both write edgekit/sample/<model>_detector.pt when a run beats the best so far. The reference
# model trains in resumable stages (state in ~/.cache/edgekit/train/reference): repeat the
# command until it reports the end of the schedule; MINUTES bounds each run.
MINUTES ?= 30
train-sample: setup
	$(BIN)/python samples/train_detector.py --model sample --fresh --minutes 18

train-reference: setup
	$(BIN)/python samples/train_detector.py --model reference --minutes $(MINUTES)

clean:
	rm -rf $(OUT) $(VENV)
