"""Benchmarks of the numeric core, as ratios against baselines timed in the same process.

    python -m theory.bench [--sizes 1000 4000] [--steps 200] [--json PATH]

Rows:
1. Per-step time of each step-wise selector at each N (linear scaling: ratio ~ N ratio).
2. Gram build (``LayerProblem.from_features``: centring, X X^T, offsets) against a plain
   matrix product of the same shape, (N, p) @ (p, N): the machine's limit.
3. The active-set gamma solver against cvxpy on the same supports (those of a
   fully-corrective run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from theory.problem import LayerProblem
from theory.selectors import select
from theory.simplex_qp import minimise

STEP_METHODS = ("greedy-local", "frank-wolfe", "fixed-step", "away", "pairwise")


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls, in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _features(n: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(width, 8))
    w, b = rng.normal(size=(n, 8)), rng.normal(size=n)
    return np.tanh(x @ w.T + b).T  # (N, width): a random tanh layer over ``width`` samples


def step_costs(sizes: list[int], steps: int, repeat: int) -> list[dict]:
    rows = []
    for n in sizes:
        problem = LayerProblem.from_features(_features(n, 64))
        for method in STEP_METHODS:
            per_step = best_time(lambda p=problem, m=method: select(p, steps, m), repeat) / steps
            rows.append({"method": method, "N": n, "steps": steps, "seconds_per_step": per_step})
    base = {r["method"]: r["seconds_per_step"] for r in rows if r["N"] == sizes[0]}
    for r in rows:
        r["ratio_to_smallest_N"] = r["seconds_per_step"] / base[r["method"]]
    return rows


def gram_build(n: int, width: int, repeat: int) -> dict:
    psi = _features(n, width)
    flat = np.ascontiguousarray(psi)
    other = np.ascontiguousarray(flat.T.copy())
    product = best_time(lambda: flat @ other, repeat)  # general product, 2 N^2 p flops
    build = best_time(lambda: LayerProblem.from_features(psi), repeat)
    return {
        "N": n,
        "values_per_neuron": width,
        "matmul_seconds": product,
        "from_features_seconds": build,
        "matmul_gflops": 2.0 * n * n * width / product / 1e9,
        "throughput_vs_matmul": product / build,
    }


def gamma_solver(n: int, support: int, repeat: int) -> dict:
    """Solve the QPs of a fully-corrective run: warm-started (as the selector does), cold, cvxpy."""
    problem = LayerProblem.from_features(_features(n, 64, seed=1))
    trace = select(problem, support, "fully-corrective")
    supports = [trace.order[: k + 1] for k in range(1, len(trace.order))]

    def solve_all(solver: str, warm: bool = False) -> None:
        x = np.ones(1)
        for s in supports:
            start = np.append(x, 0.0) if warm else None
            quad, lin = problem.centred[np.ix_(s, s)], -problem.centred_target[s]
            x = minimise(quad, lin, start, solver)

    warm = best_time(lambda: solve_all("active-set", warm=True), repeat)
    cold = best_time(lambda: solve_all("active-set"), repeat)
    reference = best_time(lambda: solve_all("cvxpy"), 1)
    return {
        "N": n,
        "supports": len(supports),
        "largest_support": len(supports[-1]),
        "active_set_warm_seconds": warm,
        "active_set_cold_seconds": cold,
        "cvxpy_seconds": reference,
        "speedup_warm": reference / warm,
        "speedup_cold": reference / cold,
    }


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "numpy": np.__version__}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gram-n", type=int, default=4096)
    parser.add_argument("--gram-width", type=int, default=16384)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if min(args.sizes) < 2 or args.steps < 1 or args.repeat < 1:
        parser.error("--sizes must be >= 2, --steps and --repeat >= 1")

    results = {"machine": machine(), "config": vars(args) | {"json": str(args.json)}}
    print(f"machine: {results['machine']}")
    print("\n1. per-step cost (best of", args.repeat, "runs of", args.steps, "steps)")
    results["step_costs"] = step_costs(args.sizes, args.steps, args.repeat)
    print(f"{'method':<14}{'N':>7}{'us/step':>10}{'ratio':>8}")
    for r in results["step_costs"]:
        us = r["seconds_per_step"] * 1e6
        print(f"{r['method']:<14}{r['N']:>7}{us:>10.1f}{r['ratio_to_smallest_N']:>8.2f}")

    print(f"\n2. Gram build, N={args.gram_n}, {args.gram_width} values per neuron")
    g = results["gram_build"] = gram_build(args.gram_n, args.gram_width, args.repeat)
    print(
        f"matmul {g['matmul_seconds']:.3f} s ({g['matmul_gflops']:.1f} GFLOP/s), "
        f"from_features {g['from_features_seconds']:.3f} s: "
        f"{100 * g['throughput_vs_matmul']:.0f}% of the matrix product's throughput"
    )

    print("\n3. gamma subproblem on the supports of a fully-corrective run (N=2000, 60 steps)")
    q = results["gamma_solver"] = gamma_solver(2000, 60, args.repeat)
    print(
        f"{q['supports']} supports up to {q['largest_support']}: cvxpy "
        f"{q['cvxpy_seconds'] * 1e3:.0f} ms; active-set warm-started "
        f"{q['active_set_warm_seconds'] * 1e3:.1f} ms (x{q['speedup_warm']:.0f}), "
        f"cold {q['active_set_cold_seconds'] * 1e3:.1f} ms (x{q['speedup_cold']:.0f})"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
