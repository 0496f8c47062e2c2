# Two commands set everything up on a fresh machine:  make venv  (then make test / make demo)
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MXNET_HOME ?= $(CURDIR)/.mxnet_home

.PHONY: venv test demo bench reliability experiments clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -r requirements.txt
	$(VPY) -m pip install -q -c constraints.txt --no-deps -e .
	touch $(STAMP)

test: venv
	$(VPY) -m pytest -q -n 2 tests

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

# The paper's ablations in small on the embedded digits (preset `digits` of
# gluon_asymmnet/experiments/presets.py): trains the grid in experiments/digits/ (2 cells side by
# side), writes docs/experiments/ (report.md/.csv, two figures) and README's results block.
# About 22 min on 2 quiet cores (--dry-run prints the estimate); a rerun only re-reports.
experiments: venv
	$(VPY) -m gluon_asymmnet.experiments --preset digits --out experiments/digits \
	    --report-dir docs/experiments --jobs 2 --update-readme README.md

# Speed on this machine (bench/README.md): every number a median of interleaved runs,
# every comparison a ratio measured in one process. Writes bench/results/*.json and
# bench/results/latency_vs_macs.png; 10-40 min on 2 cores (quiet to shared).
BENCH_THREADS ?= 2
bench: venv
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/inference.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/train_step.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/train_step.py --amp
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/concat_formulation.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/data_pipeline.py
	OMP_NUM_THREADS=$(BENCH_THREADS) $(VPY) bench/gemm_ceiling.py
	$(VPY) bench/report.py

# The fault suite alone, rewriting its table tests/faults/RELIABILITY.md (README links it).
reliability: venv
	WRITE_RELIABILITY=1 $(VPY) -m pytest -q -n 2 tests/faults

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
