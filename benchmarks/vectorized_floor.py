"""How fast can k folds train as one batched computation? The floor under lcv's ``vectorized`` schedule.

Usage (from the repository root)::

    .venv/bin/python benchmarks/vectorized_floor.py [--widths 8,256] [--repeats 7] [--ops]

Training steps only (no validation, no trainer): 5 folds, MLP ``64-W-W-10``, batch 64, random batches of
digits-sized data, one torch thread. Printed per variant: µs per fold-step and the ratio to B, the loop
that trains the folds one after another with tensor batches and torch's default Adam (as in ``run.py``):

- ``B + fused Adam``: B with ``Adam(fused=True)``, to separate the optimizer's share;
- ``vmap(functional_call)``: the folds' stacked parameters through ``torch.func.vmap`` of one module's
  forward and ``cross_entropy`` (what ``vectorized`` does with an unmodified ``training_step``), fused Adam;
- ``vmap(F.linear)``: the same model written as a pure function of the parameters (no module swap);
- ``hand-written bmm``: no ``vmap``; ``baddbmm`` per layer and a flattened ``cross_entropy``, fused Adam —
  the grouped kernel a library can only use when it knows the model (not an arbitrary ``training_step``);
- ``bmm, weights stored transposed``: the same with each weight stacked as ``(k, in, features)`` and each bias
  as ``(k, 1, features)``, so no ``transpose``/``unsqueeze`` per step and the weights' gradients arrive in
  the parameters' layout (no copy in the backward pass); lcv's grouped kernels keep the modules' layout,
  whose float32 Adam update this one does not reproduce bit for bit.

The gap between the ``vmap`` rows and the ``bmm`` row is what ``vmap``'s per-call machinery costs (input
wrapping, pytree handling, the Python decomposition of ``nll_loss`` under ``vmap``); lcv's engine sits a little
above the ``vmap(functional_call)`` row (it also loads batches, records ``self.log`` and validates).

``--ops`` also prints where that gap comes from, one operation at a time (forward only, all ``K`` folds in one
call, width 8): each operation under ``vmap`` against the same work written on the stacked tensors by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch._dynamo  # noqa: F401  # lightning imports it; import it for every variant alike (see issue #9)
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

K, BATCH, N, FEATURES, CLASSES = 5, 64, 1437, 64, 10
STEPS = 20  # optimizer steps of every fold per timed run


def _net(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(FEATURES, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, CLASSES)
    )


def make_variants(width: int) -> dict[str, Callable[[], None]]:
    """Return each variant as a function that runs ``STEPS`` steps of all ``K`` folds."""
    torch.manual_seed(0)
    x, y = torch.randn(N, FEATURES), torch.randint(0, CLASSES, (N,))
    variants: dict[str, Callable[[], None]] = {}

    def per_fold(fused: bool) -> Callable[[], None]:
        nets = [_net(width) for _ in range(K)]
        opts = [torch.optim.Adam(n.parameters(), lr=1e-3, fused=fused or None) for n in nets]

        def run() -> None:
            for _ in range(STEPS):
                for net, opt in zip(nets, opts, strict=True):
                    idx = torch.randint(0, N, (BATCH,))
                    loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

        return run

    def stacked(step: Callable[..., torch.Tensor], batched: bool, transposed: bool = False) -> Callable[[], None]:
        params, _ = stack_module_state([_net(width) for _ in range(K)])  # type: ignore[arg-type]  # Sequentials
        if transposed:
            params = {k: v.transpose(1, 2) if v.ndim == 3 else v.unsqueeze(1) for k, v in params.items()}
        params = {k: v.detach().contiguous().requires_grad_() for k, v in params.items()}
        opt = torch.optim.Adam(params.values(), lr=1e-3, fused=True)
        call = step if batched else vmap(step, randomness="different")

        def run() -> None:
            for _ in range(STEPS):
                idx = torch.randint(0, N, (K, BATCH))
                loss = call(params, x[idx], y[idx]).sum()
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        return run

    template = _net(width)

    def module_step(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(template, p, (xb,)), yb)

    def pure_step(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        h = torch.relu(nn.functional.linear(xb, p["0.weight"], p["0.bias"]))
        h = torch.relu(nn.functional.linear(h, p["2.weight"], p["2.bias"]))
        return nn.functional.cross_entropy(nn.functional.linear(h, p["4.weight"], p["4.bias"]), yb)

    def bmm_step(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.baddbmm(p["0.bias"].unsqueeze(1), xb, p["0.weight"].transpose(1, 2)))
        h = torch.relu(torch.baddbmm(p["2.bias"].unsqueeze(1), h, p["2.weight"].transpose(1, 2)))
        out = torch.baddbmm(p["4.bias"].unsqueeze(1), h, p["4.weight"].transpose(1, 2))
        per_sample = nn.functional.cross_entropy(out.reshape(-1, CLASSES), yb.reshape(-1), reduction="none")
        return per_sample.view(K, -1).mean(1)

    variants["B: folds one by one"] = per_fold(fused=False)
    variants["B + fused Adam"] = per_fold(fused=True)
    variants["vmap(functional_call)"] = stacked(module_step, batched=False)
    variants["vmap(F.linear)"] = stacked(pure_step, batched=False)

    def transposed_step(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.baddbmm(p["0.bias"], xb, p["0.weight"]))
        h = torch.relu(torch.baddbmm(p["2.bias"], h, p["2.weight"]))
        out = torch.baddbmm(p["4.bias"], h, p["4.weight"])
        per_sample = nn.functional.cross_entropy(out.reshape(-1, CLASSES), yb.reshape(-1), reduction="none")
        return per_sample.view(K, -1).mean(1)

    variants["hand-written bmm"] = stacked(bmm_step, batched=True)
    variants["bmm, weights stored transposed"] = stacked(transposed_step, batched=True, transposed=True)
    return variants


def op_costs(repeats: int) -> dict[str, tuple[float, float]]:
    """Return ``{operation: (µs under vmap, µs written on the stacked tensors)}``, the median of ``repeats``."""
    torch.manual_seed(0)
    x, y = torch.randn(K, BATCH, FEATURES), torch.randint(0, CLASSES, (K, BATCH))
    w, b = torch.randn(K, 8, FEATURES, requires_grad=True), torch.randn(K, 8, requires_grad=True)
    logits = torch.randn(K, BATCH, CLASSES, requires_grad=True)
    ce = nn.functional.cross_entropy
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "vmap call alone (identity)": (lambda: vmap(lambda t: t)(x), lambda: x),
        "Linear 64→8": (
            lambda: vmap(nn.functional.linear)(x, w, b),
            lambda: torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)),
        ),
        "ReLU": (lambda: vmap(torch.relu)(logits), lambda: torch.relu(logits)),
        "cross_entropy (mean per fold)": (
            lambda: vmap(ce)(logits, y),
            lambda: ce(logits.reshape(-1, CLASSES), y.reshape(-1), reduction="none").view(K, -1).mean(1),
        ),
    }
    out: dict[str, tuple[float, float]] = {}
    for name, (batched, stacked) in pairs.items():
        medians = []
        for fn in (batched, stacked):
            for _ in range(20):
                fn()  # warm-up
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(100):
                    fn()
                samples.append((time.perf_counter() - start) / 100)
            medians.append(1e6 * statistics.median(samples))
        out[name] = (medians[0], medians[1])
    return out


def main(argv: list[str] | None = None) -> int:
    """Time every variant (interleaved repeats, median) and print µs per fold-step and the ratio to B."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="8,256")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--ops", action="store_true", help="also time single operations under vmap vs by hand")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.ops:
        print(f"one forward operation, {K} folds in one call: µs under vmap (its call, first row, included) vs by hand")
        for name, (batched, stacked) in op_costs(args.repeats).items():
            ratio = f"{batched / stacked:6.1f}×" if stacked >= 1 else "      —"  # the identity costs nothing by hand
            print(f"  {name:30s} {batched:7.0f} µs  {stacked:7.0f} µs  {ratio}")
    for width in (int(w) for w in args.widths.split(",")):
        variants = make_variants(width)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for run in variants.values():
            run()  # warm-up: first calls allocate and build the vmap machinery
        for _ in range(args.repeats):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["B: folds one by one"])
        print(f"width {width}: µs per fold-step (median of {args.repeats}), ratio to B")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:30s} {1e6 * med / (STEPS * K):8.0f} µs  {med / base:5.2f}× B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
