# Two commands on a fresh machine: `make demo` and `make test`. Each does all set-up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: setup ffmpeg lint test demo bench clean

setup: ffmpeg $(STAMP)
	@$(PY) -m compileall -q vidprep  # bytecode as a wheel install has it (PYTHONDONTWRITEBYTECODE would skip it)

ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing ffmpeg with apt-get ..." >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else \
		echo "ffmpeg/ffprobe not found. Install them first: 'sudo apt-get install -y ffmpeg' (Debian/Ubuntu), 'brew install ffmpeg' (macOS) or 'conda install -c conda-forge ffmpeg'." >&2; \
		exit 1; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' $(TORCH_PINS)
	@touch $(STAMP)

lint: setup
	$(PY) -m ruff check vidprep
	$(PY) -m mypy

test: setup lint
	@rc=0; OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

demo: setup
	$(PY) examples/demo.py demo

bench: setup
	$(PY) benchmarks/decode.py

clean:
	rm -rf $(VENV) demo .pytest_cache benchmarks/results benchmarks/media
