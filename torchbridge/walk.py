"""One pass over the calibration data for all chains: the traced network run piece by piece.

Pruning chain by chain needs, for chain i, the consumer's inputs on the network whose earlier
chains are already pruned. Running the whole network again for every chain costs a forward
pass per chain. A :class:`Walk` traces the network once (torch.fx, as :mod:`torchbridge.split`)
and keeps, per calibration batch, only the values that cross the cut just before chain i's
producer. For chain i it runs from that cut to the consumer's input on a copy of the state
(the Gram matrix's inputs), and once chain i is pruned it advances the state to the next
chain's producer with the pruned modules: about two forward passes in all, whatever the
number of chains. Modules are looked up in the live model at every call, so pruned modules
(and forward hooks on them) are what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from torchbridge.chains import Chain
from torchbridge.split import trace


@dataclass
class State:
    """The values of one calibration batch that later nodes still read, after ``position``
    nodes have run."""

    env: dict
    position: int


class Walk:
    def __init__(self, model: nn.Module, chains: list[Chain]) -> None:
        graph = trace(model)
        self.nodes = list(graph.nodes)
        index = {node: i for i, node in enumerate(self.nodes)}
        placeholders = [n for n in self.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ValueError(f"the network must take one input; its forward takes {placeholders}")
        self._free: dict[int, list[fx.Node]] = {}
        for node in self.nodes:
            last = max((index[user] for user in node.users), default=index[node])
            self._free.setdefault(last, []).append(node)
        calls = {}
        for node in self.nodes:
            if node.op == "call_module":
                calls.setdefault(node.target, []).append(index[node])
        self.producers, self.consumers = [], []
        for chain in chains:
            for name in (chain.producer, chain.consumer):
                if len(calls.get(name, ())) != 1:
                    raise ValueError(f"{name!r} must be called exactly once in forward")
            self.producers.append(calls[chain.producer][0])
            self.consumers.append(calls[chain.consumer][0])
        # p_i < c_i <= p_{i+1}: a chain's consumer may be the next chain's producer (Bottleneck)
        ordered = all(p < c for p, c in zip(self.producers, self.consumers, strict=True)) and all(
            c <= p for c, p in zip(self.consumers, self.producers[1:], strict=False)
        )
        if not ordered:
            raise ValueError("chains must follow each other in the network's order")
        self._inputs = [self.nodes[c].args[0] for c in self.consumers]
        self._interpreter = fx.Interpreter(model, graph=graph)

    def start(self, batch: torch.Tensor) -> State:
        return State({self.nodes[0]: batch}, 1)

    def _run(self, state: State, stop: int) -> None:
        interpreter = self._interpreter
        interpreter.env = state.env
        for i in range(state.position, stop):
            node = self.nodes[i]
            state.env[node] = interpreter.run_node(node)
            for done in self._free.get(i, ()):
                state.env.pop(done, None)
        state.position = stop

    def advance(self, state: State, chain: int) -> None:
        """Run ``state`` up to (not including) chain ``chain``'s producer."""
        self._run(state, self.producers[chain])

    def consumer_input(self, state: State, chain: int) -> torch.Tensor:
        """Chain ``chain``'s consumer input from ``state`` (at its producer), on a copy."""
        peek = State(dict(state.env), state.position)
        self._run(peek, self.consumers[chain])
        return peek.env[self._inputs[chain]]


def try_walk(model: nn.Module, chains: list[Chain]) -> Walk | None:
    """A Walk over ``chains``, or None where the network cannot be traced or cut that way
    (the caller then runs the whole network per chain)."""
    try:
        return Walk(model, chains)
    except ValueError:
        return None
