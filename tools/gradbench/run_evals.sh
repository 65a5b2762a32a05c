#!/usr/bin/env bash
# Run GradBench evals against the llad tool (and the jax, pytorch and manual tools) through gbrun.py.
#
#   GRADBENCH=<gradbench checkout> GBRUN_DIR=<folder with gbrun.py> [GB_PY=<python>] \
#     [OUT=<summaries, default tools/gradbench/results>] [LOGS=<message logs, default $TMPDIR/gbrun-logs>] \
#     bash tools/gradbench/run_evals.sh [REGEX]
#
# REGEX selects lines of the matrix below by "eval tool" (e.g. '^det ' or ' llad$').  Each run leaves
# OUT/<eval>-<tool>.json (gbrun --summary-json) and .txt (its summary), then prints one line with
# gbrun's exit code (0 = every evaluate succeeded and was valid, 2 = module not defined by the tool).
# The workloads are those of the reference results in GBRUN_DIR/results (small, for 2 cores); each
# evaluate repeats for at least 5 runs and 0.5 s so that medians are stable on a shared machine.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
: "${GRADBENCH:?set GRADBENCH to the root of the gradbench checkout}"
: "${GBRUN_DIR:?set GBRUN_DIR to the folder holding gbrun.py}"
PY=${GB_PY:-$HERE/../../.venv/bin/python}
OUT=${OUT:-$HERE/results}
LOGS=${LOGS:-${TMPDIR:-/tmp}/gbrun-logs}
TIMEOUT=${TIMEOUT:-900}
FILTER=${1:-.}
mkdir -p "$OUT" "$LOGS"
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
GRADBENCH=$(cd "$GRADBENCH" && pwd)
OUT=$(cd "$OUT" && pwd)
cd "$GRADBENCH"                                   # evals find data and tools/manual relative to it
export PYTHONPATH=python/gradbench${PYTHONPATH:+:$PYTHONPATH}

tool_cmd() {
  case $1 in
    llad) echo "$PY $HERE/run.py" ;;
    jax | pytorch) echo "$PY python/gradbench/gradbench/tools/$1/run.py" ;;
    *) echo "$PY python/gradbench/gradbench/cpp.py $1" ;;      # C++ tools: manual, finite
  esac
}

R="--min-runs 5 --min-seconds 0.5"
# eval    tool     eval options
MATRIX=$(cat <<EOM
hello    llad
lse      llad     -n 1000 10000 100000 $R
llsq     llad     -n 64 1024 -m 16 128 $R
ode      llad     -n 100 1000 -s 10 100 $R
det      llad     -l 5 7 9 $R
kmeans   llad     -k 10 100 -n 1000 -d 8 $R
gmm      llad     -d 2 10 -k 5 10 -n 1000 $R
lstm     llad     -l 2 4 -c 1024 $R
ba       llad     --min 1 --max 2 $R
particle llad     $R
saddle   llad     $R
hello    jax
lse      jax      -n 1000 10000 100000 $R
llsq     jax      -n 64 1024 -m 16 128 $R
ode      jax      -n 100 1000 -s 10 100 $R
kmeans   jax      -k 10 100 -n 1000 -d 8 $R
gmm      jax      -d 2 10 -k 5 10 -n 1000 $R
hello    pytorch
lse      pytorch  -n 1000 10000 100000 $R
kmeans   pytorch  -k 10 100 -n 1000 -d 8 $R
gmm      pytorch  -d 2 10 -k 5 10 -n 1000 $R
lstm     pytorch  -l 2 4 -c 1024 $R
ba       pytorch  --min 1 --max 2 --min-runs 1 --min-seconds 0
lse      manual   -n 1000 10000 100000 $R
llsq     manual   -n 64 1024 -m 16 128 $R
ode      manual   -n 100 1000 -s 10 100 $R
det      manual   -l 5 7 9 $R
kmeans   manual   -k 10 100 -n 1000 -d 8 $R
gmm      manual   -d 2 10 -k 5 10 -n 1000 $R
lstm     manual   -l 2 4 -c 1024 $R
ba       manual   --min 1 --max 2 $R
EOM
)

echo "$MATRIX" | while read -r ev tool args; do
  [ -z "$ev" ] && continue
  echo "$ev $tool" | grep -Eq -- "$FILTER" || continue
  start=$(date +%s)
  "$PY" "$GBRUN_DIR/gbrun.py" -q \
    --eval "$PY python/gradbench/gradbench/evals/$ev/run.py $args" \
    --tool "$(tool_cmd "$tool")" \
    --timeout "$TIMEOUT" \
    -o "$LOGS/$ev-$tool.jsonl" \
    --summary-json "$OUT/$ev-$tool.json" > "$OUT/$ev-$tool.txt" 2> "$LOGS/$ev-$tool.stderr"
  rc=$?
  # keep machine paths out of the summaries
  sed -i -e "s|$PY|\$GB_PY|g" -e "s|$HERE|\$LLAD/tools/gradbench|g" -e "s|$GBRUN_DIR|\$GBRUN_DIR|g" \
    -e "s|$GRADBENCH|\$GRADBENCH|g" "$OUT/$ev-$tool.json" "$OUT/$ev-$tool.txt"
  echo "$ev $tool rc=$rc ($(( $(date +%s) - start ))s) $(tail -1 "$OUT/$ev-$tool.txt")"
done
