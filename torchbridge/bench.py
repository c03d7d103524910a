"""Benchmarks of the torch bridge: ``python -m torchbridge.bench [--out BENCH.json]``.

Row "local vs forward": on one chain and one calibration batch, the time to choose n channels
with the Gram matrix (accumulate G from the consumer's inputs, then greedy-local, which scores
every candidate in O(N) per step) against GFS-style evaluation (each step, 50 random candidates
each scored by a forward pass of the consumer on the batch: the layer's output loss with the
candidate's gates), and the loss each reaches at the same n, relative to E ||F||^2. Both run in
this process, one after the other, so the ratio is what to read.

Row "Gram build": the channel Gram matrix accumulated from activations (float64, N = 4,096
channels, 16,384 positions) against a plain matrix product of the same shape in float64 and
float32 (the machine's limit). Rows "end to end": the MNIST ResNet-18 and EfficientNet-Lite0
pruned to a FLOPs target by our greedy-local (shared-tolerance search) and by Torch-Pruning's
magnitude and Taylor pruners (ratio search), against the calibration forward passes alone; each
in a fresh process, for its peak resident memory; quality before any fine-tuning. Rows
"scaling": our pruning time against the number of calibration images, and where the time goes
(a profile's top entries); rows "widths": the same against the chains' widths (the MNIST
ResNet at 1, 2, 4 times its widths). Rows "flops": the FLOPs of 17 random widths counted on
resized copies against :func:`torchbridge.budget.flops_fraction` (one count). Rows "surgery":
cutting half of every chain of four random-weight networks (224 px) with our surgery against
Torch-Pruning's (its dependency graph and magnitude importance included). Rows "device"
(by default only where CUDA is present): :mod:`torchbridge.device_bench`, MobileNetV2 and
EfficientNet-Lite0 at 224 px with thousands of calibration images on the GPU.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing
import platform
import pstats
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sims.store import atomic_write, provenance, versions
from theory import LayerProblem, select
from theory.bench import best_time
from torchbridge.baselines import torch_pruning_prune
from torchbridge.budget import flops_fraction, prune_to_flops, uniform_widths
from torchbridge.chains import Chain, block_chains, chain_widths
from torchbridge.counting import count
from torchbridge.device_bench import DEVICE_NETWORKS, device_rows
from torchbridge.efficientnet import load_efficientnet_lite0
from torchbridge.gram import GramAccumulator
from torchbridge.images import photo_sets
from torchbridge.job import PruneConfig, check_device, measure, prune_model
from torchbridge.mnist import NarrowResNet18, split, trained
from torchbridge.models import build, views
from torchbridge.oracle import GlobalLoss
from torchbridge.prune import prune_chains, resize, run_capturing

ROWS = ("gram", "forms", "local", "end", "scaling", "widths", "flops", "surgery", "device")
SURGERY_NETWORKS = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_lite0")
NETWORKS = ("mnist-resnet18", "efficientnet-lite0")
END_TASKS = ("forward passes", "greedy-local", "greedy-local-predicted", "tp-magnitude",
             "tp-taylor")  # fmt: skip


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


def gram_build(channels: int = 4096, positions: int = 16384, repeat: int = 3) -> dict:
    """GramAccumulator on a 1x1 consumer: ``positions`` = B x H x W activation vectors of
    ``channels`` channels, against a general matrix product of the same shape (float64 and
    float32) in torch: the machine's limit for that product."""
    generator = torch.Generator().manual_seed(0)
    side = int(np.sqrt(positions // 16))
    h = torch.randn(16, channels, side, side, generator=generator)
    consumer = nn.Conv2d(channels, 64, 1, bias=False)

    def best(fn) -> float:
        return best_time(fn, repeat)

    def accumulate():
        accumulator = GramAccumulator(consumer)
        accumulator.update(h)
        return accumulator.gram()

    flat64 = h.double().permute(0, 2, 3, 1).reshape(-1, channels)
    flat32 = flat64.float()
    row = {"N": channels, "values": flat64.shape[0]}
    row["matmul64_s"] = best(lambda: flat64.T @ flat64)
    row["matmul32_s"] = best(lambda: flat32.T @ flat32)
    row["gram_s"] = best(accumulate)
    flops = 2.0 * channels * channels * flat64.shape[0]
    row["matmul64_gflops"] = flops / row["matmul64_s"] / 1e9
    row["gram_vs_matmul64"] = row["matmul64_s"] / row["gram_s"]
    row["gram_vs_matmul32"] = row["matmul32_s"] / row["gram_s"]
    return row


KERNEL_SHAPES = ((128, 16, 28), (128, 64, 7), (32, 64, 56), (32, 256, 14), (32, 512, 7))


def kernel_forms(shapes=KERNEL_SHAPES, repeat: int = 3) -> list[dict]:
    """A 3x3, stride-1 consumer (C -> C channels) on a batch (B, C, H, H): seconds to add the
    batch to its Gram matrix in the row-correlation form and in the full unfold form, and
    the consumer's own float32 forward pass on the batch."""
    rows = []
    for batch, channels, side in shapes:
        generator = torch.Generator().manual_seed(0)
        h = torch.randn(batch, channels, side, side, generator=generator)
        times = _form_times(nn.Conv2d(channels, channels, 3, padding=1, bias=False), h, repeat)
        rows.append({"B": batch, "C": channels, "H": side, "unfold_s": times["unfold"],
                     "correlation_s": times["correlation"], "conv_s": times["conv"],
                     "speedup": times["unfold"] / times["correlation"],
                     "correlation_over_conv": times["correlation"] / times["conv"]})  # fmt: skip
    return rows


def _form_times(consumer: nn.Conv2d, h: torch.Tensor, repeat: int) -> dict[str, float]:
    times = {}
    for form, unfold in (("correlation", False), ("unfold", True)):
        accumulator = GramAccumulator(consumer, unfold=unfold)
        assert accumulator.form == form
        times[form] = best_time(lambda: accumulator.update(h), repeat)  # noqa: B023
    with torch.no_grad():
        times["conv"] = best_time(lambda: consumer(h), repeat)
    return times


def _network(
    name: str,
) -> tuple[nn.Module, list, list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """(model, chains, calibration batches, test images, test labels or None)."""
    if name == "mnist-resnet18":
        model = trained("resnet18", 0)
        xt, _, xs, ys = split(0)
        return model, block_chains(model), list(xt[:512].split(128)), xs, ys

    model = load_efficientnet_lite0()
    calibration, test, _ = photo_sets(views("efficientnet_lite0"), 96, seed=0)
    return model, block_chains(model), list(calibration.split(32)), test, None


def _peak_mib() -> float:
    """This process's peak resident memory: VmHWM (Linux; a new process image starts its
    own), else getrusage, whose maximum survives exec and so includes the parent's."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def end_to_end_task(network: str, task: str, flops: float) -> dict:
    """One row of the end-to-end table, run in its own process (for its peak memory)."""
    torch.manual_seed(0)
    model, chains, calibration, test, labels = _network(network)
    start = time.perf_counter()
    if task == "forward passes":
        with torch.no_grad():
            for batch in calibration:
                model(batch)
        pruned = None
    elif task.startswith("greedy-local"):
        allocation = "predicted" if task.endswith("predicted") else "tolerance"
        pruned, _, probes = prune_to_flops(model, chains, calibration, flops,
                                           allocation=allocation)  # fmt: skip
    else:
        pruned, _, _ = prune_model(
            model, chains, calibration, PruneConfig(method=task, flops=flops)
        )
    seconds = time.perf_counter() - start
    row = {"network": network, "task": task, "seconds": seconds, "peak_rss_mib": _peak_mib()}
    if pruned is not None:
        result = measure(pruned, model, test, labels, 64)
        base = measure(model, model, test[:64], None, 64)
        row |= {k: result[k] for k in ("agreement", "kl", "accuracy") if k in result}
        row["flops"] = result["flops"] / base["flops"]
        if task.startswith("greedy-local"):
            row["real_probes"] = sum(not p.predicted for p in probes)
    return row


def _pass_times(model: nn.Module, chains: list[Chain], batches: list[torch.Tensor]) -> tuple:
    """(seconds of the forward passes over ``batches``, seconds of one pruning pass at keep
    0.5 with greedy-local on them)."""
    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    prune_chains(model, chains, batches, keep=0.5)
    return forward, time.perf_counter() - start


def scaling(images: tuple[int, ...]) -> tuple[list[dict], list[str]]:
    """EfficientNet-Lite0, greedy-local at keep 0.5: seconds against calibration images (and
    the forward passes alone), and the top entries of a profile of the largest run."""
    model, chains, calibration, _, _ = _network("efficientnet-lite0")
    everything = torch.cat(calibration)
    rows = []
    for size in images:
        forward, prune = _pass_times(model, chains, list(everything[:size].split(32)))
        rows.append({"images": size, "prune_s": prune, "forward_s": forward})
    profile = cProfile.Profile()
    profile.enable()
    prune_chains(model, chains, list(everything[: images[-1]].split(32)), keep=0.5)
    profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(8)
    top = [line for line in text.getvalue().splitlines() if line.strip()][-9:]
    return rows, top


def local_rows(networks: list[str], keep: float) -> list[dict]:
    local = []
    for network in networks:
        model, chains, calibration, _, _ = _network(network)
        chain = chains[4]
        local.append({"network": network} | local_vs_forward(
            model, chain, torch.cat(calibration)[:128], keep))  # fmt: skip
    _print(local, ("network", "chain", "N", "n", "images", "gram_greedy_s", "forward_50_s",
                   "speedup", "gram_greedy_loss_rel", "forward_50_loss_rel"))  # fmt: skip
    return local


def gram_work(network: str) -> dict:
    """Multiply-adds per image: the network's forward pass (torch's counter) against the
    Gram accumulation of all its chains on the unpruned network (one pruning pass's Grams)."""
    model, chains, calibration, _, _ = _network(network)
    example = calibration[0][:1]
    shapes = {}
    handles = [
        model.get_submodule(c.consumer).register_forward_pre_hook(
            lambda _, args, name=c.consumer: shapes.__setitem__(name, args[0].shape)
        )
        for c in chains
    ]
    with torch.no_grad():
        model(example)
    for handle in handles:
        handle.remove()
    gram = 0
    for chain in chains:
        shape = shapes[chain.consumer]
        height, width = (shape[2], shape[3]) if len(shape) == 4 else (1, 1)
        gram += GramAccumulator(model.get_submodule(chain.consumer)).multiply_adds(height, width)
    forward = count(model, example).macs
    return {"network": network, "forward_macs": forward, "gram_macs": gram,
            "gram_over_forward": gram / forward}  # fmt: skip


def end_rows(networks: list[str], flops: float) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    ends = []
    for network in networks:
        for task in END_TASKS:
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                ends.append(pool.submit(end_to_end_task, network, task, flops).result())
            print(f"  {ends[-1]}", file=sys.stderr)
    _print(ends, ("network", "task", "seconds", "peak_rss_mib", "flops", "agreement", "kl",
                  "accuracy", "real_probes"))  # fmt: skip
    return ends


def width_scaling(factors: tuple[int, ...] = (1, 2, 4)) -> list[dict]:
    """The MNIST ResNet-18 topology at widths (16, 32, 64, 128) times each factor (untrained:
    timing only), greedy-local at keep 0.5 on 512 MNIST images: one pruning pass against
    the forward passes, as the chains' widths N grow."""
    batches = list(split(0)[0][:512].split(128))
    rows = []
    for factor in factors:
        torch.manual_seed(0)
        model = NarrowResNet18(tuple(w * factor for w in (16, 32, 64, 128))).eval()
        forward, prune = _pass_times(model, block_chains(model), batches)
        rows.append({"largest_N": 128 * factor, "prune_s": prune, "forward_s": forward})
    return rows


def flops_counting(network: str, widths: int = 17) -> dict:
    """Seconds to get the FLOPs fraction of ``widths`` random widths by counting resized
    copies and by :func:`torchbridge.budget.flops_fraction`, and whether they agree."""
    model, chains, calibration, _, _ = _network(network)
    example, rng = calibration[0][:1], np.random.default_rng(0)
    totals = chain_widths(model, chains)
    drawn = [{name: int(rng.integers(1, n + 1)) for name, n in totals.items()}
             for _ in range(widths)]  # fmt: skip
    start = time.perf_counter()
    base = count(model, example).flops
    copies = [count(resize(model, chains, w), example).flops / base for w in drawn]
    copies_s = time.perf_counter() - start
    start = time.perf_counter()
    fraction_of = flops_fraction(model, chains, example)
    ours = [fraction_of(w) for w in drawn]
    ours_s = time.perf_counter() - start
    return {"network": network, "widths": widths, "resized_copies_s": copies_s,
            "one_count_s": ours_s, "speedup": copies_s / ours_s,
            "equal": copies == ours}  # fmt: skip


def surgery(arch: str, keep: float = 0.5, repeat: int = 3, size: int = 224) -> dict:
    """Best-of-``repeat`` seconds to cut every chain of ``arch`` (random weights) to
    max(1, round(keep N)) channels: our surgery (:func:`torchbridge.prune.resize`, a copy
    included) against Torch-Pruning's (:func:`torchbridge.baselines.torch_pruning_prune`:
    a copy, its dependency graph from one traced image, magnitude importance, removal);
    ``same_shapes``: both give every parameter the same shape."""
    torch.manual_seed(0)
    model = build(arch, num_classes=1000)
    chains = block_chains(model)
    widths = uniform_widths(chain_widths(model, chains), keep)
    batches = [torch.randn(1, 3, size, size)]

    def ours() -> nn.Module:
        return resize(model, chains, widths)

    def theirs() -> nn.Module:
        return torch_pruning_prune(model, chains, batches, "tp-magnitude", keep)

    ours_s, tp_s = best_time(ours, repeat), best_time(theirs, repeat)
    shapes = [{k: v.shape for k, v in net().state_dict().items()} for net in (ours, theirs)]
    return {"network": arch, "chains": len(chains), "ours_s": ours_s,
            "torch_pruning_s": tp_s, "torch_pruning_over_ours": tp_s / ours_s,
            "same_shapes": shapes[0] == shapes[1]}  # fmt: skip


def _print(rows: list[dict], header: tuple[str, ...]) -> None:
    print(" | ".join(header))
    for row in rows:
        cells = [row.get(k, "") for k in header]
        print(" | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchbridge.bench", description=__doc__)
    parser.add_argument("--keep", type=float, default=0.5, help="local vs forward: n / N")
    parser.add_argument("--flops", type=float, default=0.5, help="end to end: FLOPs target")
    parser.add_argument("--out", type=Path, default=Path("runs/torchbridge-bench.json"))
    cuda = torch.cuda.is_available()
    parser.add_argument("--rows", nargs="+", choices=ROWS,
                        default=[r for r in ROWS if cuda or r != "device"],
                        help="tables (default: all; 'device' only with CUDA)")  # fmt: skip
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--device", default="cuda" if cuda else "cpu", help="rows 'device'")
    parser.add_argument("--images", type=int, default=2048,
                        help="rows 'device': calibration images (224 px)")  # fmt: skip
    parser.add_argument("--device-networks", nargs="+", choices=DEVICE_NETWORKS,
                        default=list(DEVICE_NETWORKS))  # fmt: skip
    args = parser.parse_args(argv)
    if "device" in args.rows:
        try:
            check_device(args.device)
        except ValueError as error:
            parser.error(str(error))
        if args.images < 1:
            parser.error("--images must be >= 1")
    made = provenance()  # commit, dirty flag, machine
    result = {
        "machine": made.pop("machine") | {"cpu": platform.processor() or platform.machine(),
                                          "threads": torch.get_num_threads()},
        "versions": versions(),
        **made,
    }  # fmt: skip
    if "gram" in args.rows:
        result["gram_build"] = gram_build()
        _print([result["gram_build"]], ("N", "values", "matmul64_s", "matmul32_s", "gram_s",
               "matmul64_gflops", "gram_vs_matmul64", "gram_vs_matmul32"))  # fmt: skip
    if "forms" in args.rows:
        result["kernel_forms"] = kernel_forms()
        _print(result["kernel_forms"], ("B", "C", "H", "unfold_s", "correlation_s", "conv_s",
                                        "speedup", "correlation_over_conv"))  # fmt: skip
    if "local" in args.rows:
        result["local_vs_forward"] = local_rows(args.networks, args.keep)
    if "end" in args.rows:
        result["gram_work"] = [gram_work(network) for network in args.networks]
        _print(result["gram_work"], ("network", "forward_macs", "gram_macs", "gram_over_forward"))
        result["end_to_end"] = end_rows(args.networks, args.flops)
    if "scaling" in args.rows:
        scale, profile = scaling((24, 48, 96))
        _print(scale, ("images", "prune_s", "forward_s"))
        print("\n".join(profile))
        result |= {"scaling": scale, "profile_top": profile}
    if "widths" in args.rows:
        result["width_scaling"] = width_scaling()
        _print(result["width_scaling"], ("largest_N", "prune_s", "forward_s"))
    if "flops" in args.rows:
        result["flops_counting"] = [flops_counting(network) for network in args.networks]
        _print(result["flops_counting"], ("network", "widths", "resized_copies_s",
                                          "one_count_s", "speedup", "equal"))  # fmt: skip
    if "surgery" in args.rows:
        result["surgery"] = [surgery(arch) for arch in SURGERY_NETWORKS]
        _print(result["surgery"], ("network", "chains", "ours_s", "torch_pruning_s",
                                   "torch_pruning_over_ours", "same_shapes"))  # fmt: skip
    if "device" in args.rows:
        result["device"] = []
        for arch in args.device_networks:  # written after each network: a stop loses none
            result["device"].append(device_rows(arch, args.device, args.images))
            print(json.dumps(result["device"][-1], indent=1))
            atomic_write(args.out, json.dumps(result, indent=2))
    atomic_write(args.out, json.dumps(result, indent=2))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
