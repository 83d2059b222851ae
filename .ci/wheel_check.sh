#!/usr/bin/env bash
# CI: the built wheel works installed, outside the checkout (DESIGN.md, "Installed, not only
# checked out"). Builds it from the files git would ship, installs it without -e into a fresh
# venv that reuses this environment's dependencies (TensorFlow is not downloaded again), and
# runs the CLI and loads named configs from a folder outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A copy of what a clone holds (tracked and new files, not ignored ones, not deleted ones):
# building in the checkout could pick up stale files from build/.
mkdir "$work/src"
git ls-files --cached --others --exclude-standard | while read -r file; do
    if [[ -e $file ]]; then echo "$file"; fi
done | tar -cf - -T - | tar -xf - -C "$work/src"
pip wheel --no-deps --quiet --wheel-dir "$work/dist" "$work/src"
wheel=("$work"/dist/tfcovseg-*.whl)

python - "${wheel[0]}" <<'EOF'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
top_level = sorted({name.split("/")[0] for name in names})
assert all(t == "tfcovseg" or t.endswith(".dist-info") for t in top_level), top_level
configs = [n for n in names if n.startswith("tfcovseg/configs/") and n.endswith(".yaml")]
assert {"tfcovseg/configs/demo.yaml", "tfcovseg/configs/bench_smoke.yaml"} <= set(configs), configs
print(f"wheel: top level {top_level}, {len(configs)} named configs")
EOF

python -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --no-deps --ignore-installed --quiet "${wheel[0]}"
mkdir "$work/outside" && cd "$work/outside"
"$work/venv/bin/python" - "$work/venv" <<'EOF'
import sys
from pathlib import Path

import tfcovseg
from tfcovseg.config import config_path, load_config
from tfcovseg.settings.bench import BenchConfig
from tfcovseg.settings.train import TrainConfig

venv = Path(sys.argv[1]).resolve()
assert venv in Path(tfcovseg.__file__).resolve().parents, f"{tfcovseg.__file__} is not the wheel's"
demo = load_config(TrainConfig, config_path("demo"))
smoke = load_config(BenchConfig, config_path("bench_smoke"))
print(f"installed {tfcovseg.__file__}: demo stages {[s.name for s in demo.stages]}, "
      f"bench_smoke {smoke.name!r}")
EOF
"$work/venv/bin/tfcovseg" --help > /dev/null
"$work/venv/bin/tfcovseg" train --help > /dev/null
echo "wheel check passed"
