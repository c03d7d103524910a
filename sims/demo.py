"""A first look: every selector on one random two-layer network, a table and a decay figure.

    python -m sims.demo [--neurons 2000] [--samples 20] [--steps 64] [--seed 0] [--out figures]

psi_i(x) = N c_i tanh(w_i . x + b_i) over m Gaussian inputs x in R^3 (Gaussian w, b, c). The
table gives L(a_n) / sigma^2 after n steps, next to THEORY.md's predictions; the figure puts
the same curves on a semi-log axis (a straight line is exp(-c n)).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from theory import METHODS, LayerProblem, geometry, select
from theory.bounds import fixed_step_margin, greedy_local, linear_rate, random_expected

CHECKPOINTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def two_layer_features(neurons: int, samples: int, seed: int) -> np.ndarray:
    """psi (N, m) of a random tanh layer in mean-field form."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 3))
    w, b, c = rng.normal(size=(neurons, 3)), rng.normal(size=neurons), rng.normal(size=neurons)
    return neurons * c[:, None] * np.tanh(x @ w.T + b).T


def run(neurons: int, samples: int, steps: int, seed: int) -> tuple[dict, dict]:
    problem = LayerProblem.from_features(two_layer_features(neurons, samples, seed))
    geo = geometry(problem)
    curves = {}
    for method in METHODS:
        n = steps if method not in ("omp", "fully-corrective", "magnitude") else min(steps, neurons)
        curves[method] = select(problem, n, method, seed=seed).losses / geo.sigma2
    return curves, geo.as_dict()


def print_table(curves: dict, geo: dict, steps: int) -> None:
    marks = [k for k in CHECKPOINTS if k <= steps]
    print(
        f"N={geo['n_neurons']}  rank={geo['rank']}  D={geo['diameter']:.4g}  "
        f"r={geo['margin']:.4g} ({'exact' if geo['margin_exact'] else 'lower bound'})  "
        f"sigma^2={geo['sigma2']:.4g}  c_bound={linear_rate(geo['diameter'], geo['margin']):.3g}"
    )
    print("L(a_n) / sigma^2 after n steps")
    print(f"{'method':<18}" + "".join(f"{f'n={k}':>10}" for k in marks))
    for method, h in curves.items():
        cells = [f"{h[k - 1]:>10.2e}" if k <= len(h) else f"{'-':>10}" for k in marks]
        print(f"{method:<18}" + "".join(cells))
    n = np.asarray(marks)
    s2, d, r = geo["sigma2"], geo["diameter"], geo["margin"]
    predictions = {
        "random E (st.1)": random_expected(s2, n) / s2,
        "fixed (st.3)": fixed_step_margin(d, r, n) / s2,
        "greedy (st.4)": greedy_local(curves["greedy-local"][0] * s2, d, r, n) / s2,
    }
    for name, values in predictions.items():
        print(f"{name:<18}" + "".join(f"{v:>10.2e}" for v in values))


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, h in curves.items():
        steps = np.arange(1, len(h) + 1)
        ax.semilogy(steps, np.where(h > 0.0, h, np.nan), label=method, lw=1.5)
    ax.set_xlabel("n (selector steps = neurons added)")
    ax.set_ylabel("L(a_n) / sigma^2")
    ax.set_title("One random two-layer tanh network (exact fits, loss 0, not drawn)")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args(argv)
    if args.neurons < 2 or args.samples < 1 or args.steps < 1:
        parser.error("--neurons must be >= 2, --samples and --steps >= 1")
    curves, geo = run(args.neurons, args.samples, args.steps, args.seed)
    print_table(curves, geo, args.steps)
    path = args.out / "demo_decay.png"
    plot(curves, path)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
