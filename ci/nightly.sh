#!/usr/bin/env bash
# Nightly chaos suite, one shard: runs `quorum-chaos run` over this shard's seeds and
# fails when a verdict is not the expected one. Runnable locally, e.g.
#   ci/nightly.sh --shard 1/4
#   ci/nightly.sh --shard 1/1 --bug minority-quorum --expect invalid --duration 60
# Correct peers: every seed must be valid (exit 0). A planted bug (--expect invalid):
# at least one seed of the shard must be found invalid (exit 1), and none may crash
# the harness (exit 3). Run dirs land in runs/nightly/ (CI uploads them on failure).
# Installs from the repository's own files into .venv-nightly unless --no-install.
set -euo pipefail
cd "$(dirname "$0")/.."

shard="1/1" duration=120 profile=mixed bug="" expect=valid seeds=4 peers=5 install=1
usage() { sed -n '2,9p' "$0" >&2; echo "options: --shard I/N --duration S --profile P --bug NAME --expect valid|invalid --seeds K --peers N --no-install" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --shard) shard="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --bug) bug="$2"; shift 2 ;;
    --expect) expect="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    -h|--help) usage ;;
    *) echo "nightly.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ "$shard" =~ ^([0-9]+)/([0-9]+)$ ]] || { echo "nightly.sh: --shard must be I/N, got $shard" >&2; exit 2; }
index="${BASH_REMATCH[1]}" count="${BASH_REMATCH[2]}"
(( count >= 1 && index >= 1 && index <= count )) || { echo "nightly.sh: shard $shard out of range" >&2; exit 2; }
[[ "$expect" == valid || "$expect" == invalid ]] || { echo "nightly.sh: --expect valid|invalid" >&2; exit 2; }

if (( install )); then
  python3 -m venv .venv-nightly && . .venv-nightly/bin/activate && pip install -q -e '.[test]'
fi

out="runs/nightly/${profile}${bug:+-$bug}-shard${index}of${count}"
mkdir -p "$out"
# Seeds of this shard: a date-stamped base (a new slice every night, printed so any
# failure can be re-run with the same seed) plus every count-th offset.
base="${NIGHTLY_BASE_SEED:-$(date -u +%Y%m%d)}"
failed=0 detected=0
for ((k = 0; k < seeds; k++)); do
  seed=$(( base * 1000 + k * count + index - 1 ))
  args=(run --peers "$peers" --profile "$profile" --seed "$seed" --duration "$duration" --out "$out" --quiet)
  [[ -n "$bug" ]] && args+=(--bug "$bug")
  echo "::group::quorum-chaos ${args[*]}"
  set +e; quorum-chaos "${args[@]}"; code=$?; set -e
  echo "::endgroup::"
  echo "seed $seed: exit $code"
  case "$code" in
    0) [[ "$expect" == valid ]] || true ;;
    1) detected=1; [[ "$expect" == invalid ]] || failed=1 ;;
    *) echo "seed $seed: harness error or unknown verdict (exit $code)" >&2; failed=1 ;;
  esac
done
if [[ "$expect" == invalid && $detected == 0 ]]; then
  echo "planted bug ${bug:-?} was NOT detected by any seed of shard $shard" >&2
  failed=1
fi
exit "$failed"
