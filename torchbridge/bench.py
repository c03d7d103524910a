"""Benchmarks of the torch bridge: ``python -m torchbridge.bench [--out BENCH.json]``.

Row "local vs forward": on one chain and one calibration batch, the time to choose n channels
with the Gram matrix (accumulate G from the consumer's inputs, then greedy-local, which scores
every candidate in O(N) per step) against GFS-style evaluation (each step, 50 random candidates
each scored by a forward pass of the consumer on the batch: the layer's output loss with the
candidate's gates), and the loss each reaches at the same n, relative to E ||F||^2. Both run in
this process, one after the other, so the ratio is what to read.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sims.store import atomic_write, versions
from theory import LayerProblem, select
from torchbridge.chains import Chain, block_chains, sequential_chains
from torchbridge.gram import GramAccumulator
from torchbridge.oracle import GlobalLoss
from torchbridge.prune import run_capturing


def _flatten(z: torch.Tensor) -> torch.Tensor:
    return z.reshape(z.shape[0], -1)


def local_vs_forward(model, chain: Chain, batch: torch.Tensor, keep: float) -> dict:
    """Seconds and relative loss of Gram + greedy-local and of per-candidate forward scoring."""
    consumer = model.get_submodule(chain.consumer)
    inputs: list[torch.Tensor] = []
    run_capturing(model, consumer, [batch], inputs.append)
    x = inputs[0]
    start = time.perf_counter()
    accumulator = GramAccumulator(consumer)
    accumulator.update(x)
    problem = LayerProblem.from_gram(accumulator.gram())
    n = max(1, round(keep * problem.n_neurons))
    ours = select(problem, n, "greedy-local")
    ours_s = time.perf_counter() - start

    with torch.no_grad():
        reference = _flatten(consumer(x))
    forward = GlobalLoss(consumer, _flatten, [x], [()], [reference], "mse", rows=1024)
    start = time.perf_counter()
    gfs = select(problem, n, "global-imitation", oracle=forward.oracle, candidates=50)
    gfs_s = time.perf_counter() - start
    energy = problem.target_norm2
    return {
        "chain": chain.consumer,
        "N": problem.n_neurons,
        "n": n,
        "images": x.shape[0],
        "gram_greedy_s": ours_s,
        "forward_50_s": gfs_s,
        "speedup": gfs_s / ours_s,
        "gram_greedy_loss_rel": ours.loss / energy,
        "forward_50_loss_rel": gfs.loss / energy,
    }


def _mnist_cnn() -> tuple[torch.nn.Module, torch.Tensor]:
    from sims.data import raw_images
    from torchbridge.mnist import small_cnn, train

    torch.manual_seed(0)
    images, labels = raw_images("mnist5k")
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28)
    model = small_cnn()
    train(model, x[:2000], torch.tensor(labels[:2000]), epochs=2, seed=0)
    return model, x[4000:4256]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchbridge.bench", description=__doc__)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("runs/torchbridge-bench.json"))
    args = parser.parse_args(argv)
    rows = []
    model, batch = _mnist_cnn()
    rows.append({"network": "mnist-cnn"} | local_vs_forward(
        model, sequential_chains(model)[1], batch, args.keep))  # fmt: skip
    try:
        from torchbridge.efficientnet import load_efficientnet_lite0
        from torchbridge.images import photo_sets
        from torchbridge.models import views

        effnet = load_efficientnet_lite0()
        calibration, _, _ = photo_sets(views("efficientnet_lite0"), 32, seed=0)
        chain = block_chains(effnet)[4]
        rows.append({"network": "efficientnet-lite0"} | local_vs_forward(
            effnet, chain, calibration, args.keep))  # fmt: skip
    except ValueError as error:  # weights package absent
        print(f"efficientnet-lite0 row skipped: {error}")
    header = ("network", "chain", "N", "n", "images", "gram_greedy_s", "forward_50_s", "speedup",
              "gram_greedy_loss_rel", "forward_50_loss_rel")  # fmt: skip
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k])
                         for k in header))  # fmt: skip
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads()},
        "versions": versions() | {"torch": torch.__version__},
        "rows": rows,
    }  # fmt: skip
    atomic_write(args.out, json.dumps(result, indent=2))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
