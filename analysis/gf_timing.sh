#!/bin/bash
# side-by-side timings: each pair runs at the same time, one per core, one BLAS thread each
cd "$(dirname "$0")/.."
OLD=${1:?usage: analysis/gf_timing.sh OLD_CHECKOUT  (e.g. git worktree add /tmp/old 06f1daa)}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
uptime
echo "== pair 1: no flossing, full protocol (3001 epochs)"
( /usr/bin/time -f "torch wall %e s" python -m validation.gf_torch_port --no-floss 2>&1 | grep -v Warn ) &
( /usr/bin/time -f "refimpl wall %e s" refimpl train gf_rate_xor --set flossing.schedule=none --set flossing.pre_steps=0 --out /tmp/t_none --force --quiet 2>&1 ) &
wait
echo "== pair 2: with flossing (500 + 2 x 500 steps, k = 75)"
( /usr/bin/time -f "torch wall %e s" python -m validation.gf_torch_port 2>&1 | grep -v Warn ) &
( /usr/bin/time -f "refimpl wall %e s" refimpl train gf_rate_xor --out /tmp/t_floss --force --quiet 2>&1 ) &
wait
echo "== pair 3: per-epoch time before (commit 06f1daa) and after, N = 80, B = 16, T = 300, test set evaluated every epoch before"
python analysis/gf_epoch_time.py "$OLD" rate 202 &
python analysis/gf_epoch_time.py "$OLD" binary 202 &
wait
python analysis/gf_epoch_time.py "$PWD" rate 202 &
python analysis/gf_epoch_time.py "$PWD" binary 202 &
wait
uptime
