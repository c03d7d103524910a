"""One pass over the calibration data for all chains: the traced network run piece by piece.

Pruning chain by chain needs, for chain i, the consumer's inputs on the network whose earlier
chains are already pruned. Running the whole network again for every chain costs a forward
pass per chain. A :class:`Walk` traces the network once (torch.fx, as :mod:`torchbridge.split`)
and keeps, per calibration batch, only the values that cross the cut just before chain i's
producer. For chain i it runs from that cut to the consumer's input on a copy of the state
(the Gram matrix's inputs), and once chain i is pruned it advances the state to the next
chain's producer with the pruned modules: about two forward passes in all, whatever the
number of chains. A channel group (:class:`torchbridge.chains.Group`) is cut before its first
producer and run on the copy to its last consumer, each consumer's input read on the way: a
residual stream spans a stage, so the copies of a network's streams add about one more pass.
Modules are looked up in the live model at every call, so pruned modules (and forward hooks
on them) are what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx, nn

from torchbridge.chains import Chain, Group
from torchbridge.split import trace


@dataclass
class State:
    """The values of one calibration batch that later nodes still read, after ``position``
    nodes have run."""

    env: dict
    position: int


class Walk:
    def __init__(self, model: nn.Module, chains: list[Chain | Group]) -> None:
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
        self.producers: list[int] = []  # each chain's first producer's node
        self.consumers: list[list[int]] = []  # each chain's consumers' nodes, as it names them
        for chain in chains:
            for name in (*chain.producers, *chain.consumers):
                if len(calls.get(name, ())) != 1:
                    raise ValueError(f"{name!r} must be called exactly once in forward")
            self.producers.append(min(calls[name][0] for name in chain.producers))
            self.consumers.append([calls[name][0] for name in chain.consumers])
        # p_i < p_{i+1}, p_i < every c_i; the chains may overlap (a stream spans its blocks')
        ordered = all(p < q for p, q in zip(self.producers, self.producers[1:], strict=False))
        if not (ordered and all(p < min(c) for p, c in zip(self.producers, self.consumers,
                                                            strict=True))):  # fmt: skip
            raise ValueError("chains must follow each other in the network's order")
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

    def consumer_inputs(
        self, state: State, chain: int, only: int | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Chain ``chain``'s consumers' inputs (one per consumer, in the chain's order; with
        ``only``, that consumer's alone, run no further) from ``state`` (at its first
        producer), on a copy."""
        peek = State(dict(state.env), state.position)
        wanted = self.consumers[chain] if only is None else [self.consumers[chain][only]]
        inputs = {}
        for node in sorted(wanted):  # each read before a later node frees it
            self._run(peek, node)
            inputs[node] = peek.env[self.nodes[node].args[0]]
        return tuple(inputs[node] for node in wanted)


def try_walk(model: nn.Module, chains: list[Chain | Group]) -> Walk | None:
    """A Walk over ``chains``, or None where the network cannot be traced or cut that way
    (the caller then runs the whole network per chain)."""
    try:
        return Walk(model, chains)
    except ValueError:
        return None
