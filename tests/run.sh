#!/usr/bin/env bash
# The test command (README "Set up"; .ci/run runs exactly this). On a fresh Debian machine it
# installs what the tests need (chromium + chromium-driver for tests/test_search_browser.py, and
# python3-venv), makes .venv with the project and its test extra, checks lint and format and runs
# pytest, which also runs the device suite's smoke mode (tests/test_device_suite_smoke.py).
# Arguments go to pytest: `tests/run.sh tests/test_scoring_topk.py -k one_pass`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=()
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  packages+=(chromium chromium-driver)
fi
"$PY" -c "import ensurepip" 2>/dev/null || packages+=(python3-venv)  # Debian splits venv out
if [ ${#packages[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"
fi

"$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
# CLIP's BPE vocabulary file ships in open_clip_torch; --no-deps keeps torch at the pinned version.
.venv/bin/pip install -q --no-deps open_clip_torch==3.3.0

.venv/bin/ruff check .
.venv/bin/ruff format --check .

status=0
.venv/bin/python -m pytest -q "$@" || status=$?
if [ "$status" -eq 5 ]; then  # pytest: no tests collected; a run that tests nothing fails
  echo "error: pytest collected no tests (arguments: ${*:-none}); check the paths and -k." >&2
fi
exit "$status"
