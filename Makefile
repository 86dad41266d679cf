# Two commands set everything up on a fresh machine with Python >= 3.10 and pip:
#   make run    executes the quickstart notebook (the zoo's models on the shipped official
#               MNIST test digits, a live mnist5k training run) -> results/quickstart
#   make test   runs the unit tests and nbval over the notebooks
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
RESULTS := results/quickstart

.PHONY: run test install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	$(PY) -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
	touch $(STAMP)

run: $(STAMP)
	mkdir -p $(RESULTS)
	$(PY) -m drrdn_lib.run_notebook notebooks/00_quickstart.ipynb $(RESULTS)

# notebooks whose CI run must reproduce their committed metrics (tests/test_ci_metrics.py CHECKED)
CI_CHECKED := 02_main_results 03_ablation 04_bound_check 05_representations 06_sensitivity 07_table3_hybrids 08_figure2_tsne

test: $(STAMP)
	rm -f $(foreach name,$(CI_CHECKED),results/$(name)/metrics.json)
	# one thread: a CI-scale run's numbers then do not depend on the machine's core count
	# (notebooks/build.py executes the committed notebooks the same way)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests --nbval-lax --nbval-current-env notebooks
	# the CI runs of the checked notebooks must reproduce their committed metrics within tolerance
	DRRDN_CI_METRICS=1 $(PY) -m pytest tests/test_ci_metrics.py

clean:
	rm -rf $(VENV) results .pytest_cache

# A one-node Slurm cluster on this machine (root, Debian): install, start, run
# tests/test_slurm.py (a grid through --executor slurm, one job cancelled), stop.
SLURM_DIR ?= /var/tmp/drrdn-slurm
.PHONY: slurm-test
slurm-test: $(STAMP)
	command -v sbatch slurmdbd munged mariadbd >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	   slurm-wlm slurmdbd munge mariadb-server)
	DRRDN_SLURM_DIR=$(SLURM_DIR) scripts/slurm/start_local_cluster.sh
	SLURM_CONF=$(SLURM_DIR)/etc/slurm.conf $(PY) -m pytest -q -rs tests/test_slurm.py; \
	  status=$$?; DRRDN_SLURM_DIR=$(SLURM_DIR) scripts/slurm/stop_local_cluster.sh; exit $$status
