# Two commands set everything up on a fresh machine:  make venv  (then make test / make demo)
# make test: the fast tier; make test-all: every test (CI)
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MXNET_HOME ?= $(CURDIR)/.mxnet_home

.PHONY: venv venv-gpu test test-all gpu-check demo detect-demo bench reliability experiments \
	experiments-detection zoo-table clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt setup.py
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -r requirements-dev.txt
	$(VPY) -m pip install -q -c constraints.txt --no-deps -e .
	touch $(STAMP)

# The fast tier (no slow or fault tests: tests/conftest.py), under 4 minutes on 2 cores.
test: venv
	$(VPY) -m pytest -q -n 2 -m "not slow and not fault" tests

# Everything, the fault suite included (what CI runs: .ci/run).
test-all: venv
	$(VPY) -m pytest -q -n 2 tests

# The same environment with a CUDA build of MXNet 1.9.1 in place of the CPU one
# (MXNET_CUDA=cu112: CUDA 11.2, NVIDIA driver >= 460; any mxnet-cu1xx 1.9.1 wheel works).
MXNET_CUDA ?= cu112
venv-gpu: venv
	$(VPY) -m pip uninstall -q -y mxnet
	$(VPY) -m pip install -q -c constraints.txt mxnet-$(MXNET_CUDA)==1.9.1
	$(VPY) -c 'import mxnet; print("MXNet", mxnet.__version__, "sees", mxnet.context.num_gpus(), "GPU(s)")'

# The GPU recipe in small on a GPU machine (after make venv-gpu; under 10 minutes): one --amp
# epoch of the digits on 1 and 2 GPUs with its export, --dtype float16 resumed from it,
# export/eval.py --gpus, two local dist_sync workers (tests/gpu_check.py).
gpu-check:
	$(VPY) tests/gpu_check.py runs/gpu-check

# AsymmNet-S x0.5 on the embedded digits set (32x32, no download): train, evaluate the
# exported model, export to ONNX, quantize to INT8 (ONNX Runtime), plot
# (about 98.5% val top-1 in a few minutes on 2 cores).
# Rerunning continues (or, once finished, just re-exports) the same run folder.
DEMO_RUN := runs/asymmnet_small_0.5-demo
demo: venv
	$(VPY) train_imagenet.py --dataset digits --model asymmnet_small --width-scale 0.5 \
	    --save-dir runs --tag-name demo --resume auto -j 2 --batch-size 64 --num-epochs 30 \
	    --lr 0.2 --lr-mode cosine --warmup-epochs 2 --wd 5e-5 --no-wd --crop-ratio 1 \
	    --log-interval 100
	$(VPY) eval.py --dataset digits --model-prefix $(DEMO_RUN)/asymmnet_small_0.5 \
	    --json $(DEMO_RUN)/eval.json
	$(VPY) -m gluon_asymmnet.export --run-dir $(DEMO_RUN) --prefix $(DEMO_RUN)/deploy/asymmnet_small_0.5 \
	    --format onnx
	$(VPY) -m gluon_asymmnet.quantize --onnx $(DEMO_RUN)/deploy/asymmnet_small_0.5.onnx \
	    --dataset digits --out $(DEMO_RUN)/deploy/asymmnet_small_0.5-int8.onnx
	$(VPY) -m gluon_asymmnet.plot $(DEMO_RUN)

# GluonCV's SSD on AsymmNet-S x0.5, trained on a detection set made from the embedded digits
# (VOC's layout, no download): VOC07 mAP before/after, export reloaded, ONNX, a PNG of boxes
# (gluon_asymmnet/detection_demo.py). A rerun resumes, or only re-reports a finished run.
detect-demo: venv
	$(VPY) -m gluon_asymmnet.detection_demo --out runs/detect-demo

# The paper's ablations in small on the embedded digits (preset `digits` of
# gluon_asymmnet/experiments/presets.py): trains the grid in experiments/digits/ (2 cells side by
# side), writes docs/experiments/ (report.md/.csv, two figures) and README's results block
# (tests/test_docs.py checks that the two agree).
# About 22 min on 2 quiet cores (--dry-run prints the estimate); a rerun only re-reports.
experiments: venv
	$(VPY) -m gluon_asymmnet.experiments --preset digits --out experiments/digits \
	    --report-dir docs/experiments --jobs 2 --update-readme README.md

# README's zoo table (MACs, parameters, the paper's top-1), between <!-- zoo:begin/end -->;
# tests/test_docs.py fails when the committed table is not the generated one.
zoo-table: venv
	$(VPY) -m gluon_asymmnet.summary --zoo-table --update README.md
# The paper's claim on detection (preset `detection`, docs/detection.md): the detection demo's
# SSD recipe on AsymmNet-S x0.5 and its r=0 twin MobileNetV3-S x0.5, paired seeds; trains
# experiments/detection/ and writes docs/experiments-detection/. About 30 min on 2 loaded cores.
experiments-detection: venv
	$(VPY) -m gluon_asymmnet.experiments --preset detection --out experiments/detection \
	    --report-dir docs/experiments-detection --jobs 2

# Speed on this machine (bench/README.md): every number a median of interleaved runs,
# every comparison a ratio measured in one process. Writes bench/results/*.json and
# bench/results/latency_vs_macs.png; 10-40 min on 2 cores (quiet to shared).
BENCH_THREADS ?= 2
bench: venv
	$(VPY) bench/traffic.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/inference.py
	$(VPY) bench/ort_profile.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/train_step.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/train_step.py --amp
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/concat_formulation.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/call_order.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/data_pipeline.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/gemm_ceiling.py
	$(VPY) bench/report.py

# The fault suite alone, rewriting its table tests/faults/RELIABILITY.md (docs/reliability.md links it).
reliability: venv
	WRITE_RELIABILITY=1 $(VPY) -m pytest -q -n 2 tests/faults

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
