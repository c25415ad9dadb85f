# Set-up and tests. `make install` then `make test`; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
C := -c requirements/constraints.txt
# mmcv 2.1.0 is built from source once (about 10 minutes on 2 cores) into this wheelhouse;
# later installs take the wheel from here.
WHEELHOUSE ?= $(HOME)/.cache/mmdet3d_skd/wheels

.PHONY: install test demo bench clean-venv

# The main job: generate the synthetic data set when missing, train SKD-WM3D weakly, validate
# with the KITTI metric (the table is printed at the end of training).
DATA ?= data/synth_kitti

install:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(C) "setuptools<81" wheel
	$(PIP) install -q $(C) torch==2.13.0
	$(PIP) install -q $(C) numpy==1.26.4 mmengine==0.10.7
	@mkdir -p $(WHEELHOUSE)
	@if ! ls $(WHEELHOUSE)/mmcv-2.1.0-*.whl >/dev/null 2>&1; then \
	  echo "Building mmcv 2.1.0 with CPU ops (about 10 minutes, once)"; \
	  MMCV_WITH_OPS=1 FORCE_CUDA=0 $(PIP) wheel -q --no-build-isolation --no-deps \
	    -w $(WHEELHOUSE) mmcv==2.1.0 || exit 1; \
	fi
	$(PIP) install -q $(C) --find-links $(WHEELHOUSE) mmcv==2.1.0
	$(PIP) install -q $(C) mmdet==3.3.0
	$(PIP) install -q $(C) --no-deps mmdet3d==1.4.0
	$(PIP) install -q $(C) -r requirements/mmdet3d_runtime.txt
	$(PIP) install -q $(C) --no-deps openmim==0.3.9
	$(PIP) install -q $(C) -r requirements/openmim_runtime.txt
	$(PIP) install -q $(C) -e ".[tests]"
	$(PY) -c "import mmdet3d_skd, mmcv.ops; print('mmdet3d_skd installed:', mmdet3d_skd.__version__)"

test:
	@test -x $(PY) || { echo "no $(VENV): run 'make install' first"; exit 1; }
	$(PY) -m pytest -q tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

demo:
	@test -x $(PY) || { echo "no $(VENV): run 'make install' first"; exit 1; }
	@test -f $(DATA)/kitti_infos_val.pkl || $(PY) tools/generate_synthetic.py --out $(DATA) --workers 2
	$(PY) tools/train.py configs/skd_wm3d_synth.py --work-dir work_dirs/skd_wm3d_synth \
	  --cfg-options train_dataloader.dataset.data_root=$(DATA)/ val_dataloader.dataset.data_root=$(DATA)/ \
	  test_dataloader.dataset.data_root=$(DATA)/ val_evaluator.ann_file=$(DATA)/kitti_infos_val.pkl \
	  test_evaluator.ann_file=$(DATA)/kitti_infos_val.pkl

# The benchmark set of docs/benchmarks.md: shared 2D pretraining, 7 runs (1, 2 and 6 with 3
# seeds), curves, speed probes. Hours on 2 cores: run it in the background; run again, it goes
# on where it stopped (finished runs are read back, an interrupted one resumes).
bench:
	@test -x $(PY) || { echo "no $(VENV): run 'make install' first"; exit 1; }
	$(PY) tools/benchmarks/run_benchmarks.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
