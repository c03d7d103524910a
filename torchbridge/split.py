"""A network cut at one consumer: the part before it and the part after it, as graphs.

The global selectors score a candidate by the network's output when the consumer's output is
changed; running the whole network again for every candidate would recompute everything before
the consumer. :func:`split_at` traces the model once (torch.fx; modules without children, such
as timm's padded convolutions, are kept whole) and cuts the graph at the consumer's call:

- ``head(x) -> (consumer input, *carried)``: the consumer's input and every value computed
  before the consumer that later nodes still read (the identity of a residual block, say);
- ``tail(consumer output, *carried) -> output``: the rest of the network.

``tail(consumer(head(x)[0]), *head(x)[1:])`` equals ``model(x)`` (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx, nn


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping every module without children whole."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return super().is_leaf_module(module, qualified_name) or not any(module.children())


@dataclass(frozen=True)
class Split:
    head: fx.GraphModule
    tail: fx.GraphModule
    carried: int  # how many values head passes to tail besides the consumer's input/output


def trace(model: nn.Module) -> fx.Graph:
    """The fx graph of ``model``; a ValueError naming the cause when it cannot be traced."""
    try:
        return _Tracer().trace(model)
    except Exception as error:  # fx raises several types for untraceable Python control flow
        raise ValueError(
            f"{type(model).__name__} cannot be traced by torch.fx, which is needed to run the "
            f"network piece by piece ({type(error).__name__}: {error})"
        ) from None


def split_at(model: nn.Module, consumer: str) -> Split:
    """Cut ``model`` at the only call of the submodule named ``consumer``."""
    graph = trace(model)
    root = fx.GraphModule(model, graph)
    nodes = list(graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and n.target == consumer]
    if len(calls) != 1:
        raise ValueError(f"{consumer!r} must be called exactly once in forward; found {len(calls)}")
    cut = calls[0]
    if len(cut.args) != 1 or cut.kwargs or not isinstance(cut.args[0], fx.Node):
        raise ValueError(f"{consumer!r} must be called on a single tensor")
    index = nodes.index(cut)
    later = set(nodes[index + 1 :])
    carried = [
        n for n in nodes[:index] if n.op != "get_attr" and any(user in later for user in n.users)
    ]

    head_graph, env = fx.Graph(), {}
    for node in nodes[:index]:
        env[node] = head_graph.node_copy(node, lambda n: env[n])
    head_graph.output((env[cut.args[0]], *(env[n] for n in carried)))

    tail_graph, env = fx.Graph(), {}
    env[cut] = tail_graph.placeholder("consumer_output")
    for i, node in enumerate(carried):
        env[node] = tail_graph.placeholder(f"carried_{i}")
    for node in nodes[:index]:
        if node.op == "get_attr":
            env[node] = tail_graph.node_copy(node, lambda n: env[n])
    for node in nodes[index + 1 :]:
        env[node] = tail_graph.node_copy(node, lambda n: env[n])

    parts = []
    for part in (head_graph, tail_graph):
        module = fx.GraphModule(root, part)
        module.graph.eliminate_dead_code()
        module.recompile()
        parts.append(module)
    return Split(head=parts[0], tail=parts[1], carried=len(carried))
