#!/usr/bin/env bash
# One GPU check (at most ~8 minutes on one GPU): the package's CUDA paths end to end at small size
# (bench/gpu_paths.py: zoo training on cuda, Ray Train on one GPU with bf16, decode -> evaluate) and the
# GPU rows of bench/zoo_throughput.py, bench/ae_training.py and bench/decode_eval.py (--quick), as one
# table. Exit status: non-zero when any step fails or prints a CUDA error; on a machine without a CUDA
# device every GPU row says "not measured" and the status is 0.
#
#   bash bench/gpu_check.sh            # from the repository root (or anywhere)
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rows=()
status=0

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "# GPU check"
  echo
  echo "| step | GPU row | result |"
  echo "|---|---|---|"
  for step in "gpu_paths: zoo training (Ray Tasks, cuda)" "gpu_paths: autoencoder (Ray Train, 1 GPU, bf16)" \
              "gpu_paths: decode -> evaluate (Ray Data, cuda)" "zoo_throughput.py --quick" \
              "ae_training.py --quick" "decode_eval.py --quick"; do
    echo "| ${step} | cuda | not measured (no CUDA device) |"
  done
  exit 0
fi

# step name, time limit (s), command
run_step() {
  local name=$1 limit=$2; shift 2
  local out="$tmp/${name%% *}.md" t0=$SECONDS rc
  timeout "$limit" "$@" >"$out" 2>"$out.err"; rc=$?
  if grep -qiE "CUDA error|cudaError|CUBLAS_STATUS|illegal memory access|device-side assert" "$out" "$out.err"; then
    [ "$rc" -eq 0 ] && rc=97
    echo "$name: CUDA error:" >&2; grep -iE "CUDA error|cudaError|CUBLAS_STATUS|illegal memory|device-side" "$out.err" | head -5 >&2
  fi
  if [ "$rc" -ne 0 ]; then
    status=1
    rows+=("| ${name} | - | FAILED (exit ${rc}, $((SECONDS - t0)) s): $(tail -n 1 "$out.err" | cut -c1-160 | tr '|' '/') |")
  fi
  # the GPU rows of the step's own table, as they are
  while IFS= read -r line; do rows+=("| ${name} | ${line#| }"); done < <(grep -E '^\|.*(cuda|GPU)' "$out" | grep -v -- '---')
  echo "$name: exit $rc in $((SECONDS - t0)) s" >&2
}

# limits sum to 460 s; decode_eval's Ray Data row on the GPU is gpu_paths' third path
run_step "gpu_paths.py" 200 python bench/gpu_paths.py
run_step "zoo_throughput.py --quick" 100 python bench/zoo_throughput.py --quick --devices cuda
run_step "ae_training.py --quick" 100 python bench/ae_training.py --quick --devices cuda
run_step "decode_eval.py --quick" 60 python bench/decode_eval.py --quick --devices cuda --no-ray

echo "# GPU check"
echo
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/- GPU: /'
echo
echo "| step | GPU row (the step's own columns) |"
echo "|---|---|"
printf '%s\n' "${rows[@]}"
exit $status
