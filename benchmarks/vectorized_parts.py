"""Where a ``vectorized`` fit's time goes, by wall clock, against loop B in the same process.

Usage (from the repository root)::

    .venv/bin/python benchmarks/vectorized_parts.py [--width 8] [--epochs 20] [--repeats 3] [--module]

The workload of ``run.py`` (digits, its 5 stratified folds, MLP ``64-W-W-10``, Adam, batch 64, one torch
thread): loop B and lcv ``vectorized`` with the configurable learner (``--module``: the hand-written
``LightningModule``, which runs under ``vmap``) alternate ``--repeats`` times after one warm-up fit each.
Printed: B's and lcv's wall time and their ratio (median over the repeats), then each part of the lcv fit in
ms per fit and µs per call, measured with ``perf_counter`` around the engine's methods (not ``cProfile``,
which inflates cheap Python calls): the step of the stacked folds (forward, loss and logged values), the
backward pass, the optimizer step with ``zero_grad``, gathering the folds' batches (training and validation
apart), the rest of validation, writing the weights back to the fold modules every epoch, and the rest of the
fit (setup, the training loop's own code, callbacks, history). Parts are exclusive (validation's own line
leaves out its steps and batches). Each is timed inside a Python wrapper (about 1 µs a call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


CLOCK: Callable[[], float] = time.perf_counter
"""The clock of every figure: wall time, or with ``--clock cpu`` this thread's CPU time (on a busy machine)."""


class Timers:
    """Seconds and calls per part on `CLOCK`, exclusive (a part's time excludes the timed parts it calls)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.on = False
        self._inner: list[float] = []  # time of timed parts inside each part being timed

    def _run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._inner.append(0.0)
        t0 = CLOCK()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = CLOCK() - t0
            self.seconds[name] += elapsed - self._inner.pop()
            self.calls[name] += 1
            if self._inner:
                self._inner[-1] += elapsed

    def wrap(self, name: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``fn`` timed as part ``name`` (or ``name(*args)``, to split a method's calls by argument)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return fn(*args, **kwargs)
            return self._run(name if isinstance(name, str) else name(*args), fn, *args, **kwargs)

        return timed

    def wrap_iter(self, name: Callable[..., str], fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        """Return the generator function ``fn`` with the time of each ``next()`` counted as part ``name(*args)``."""

        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            it = fn(*args, **kwargs)
            part = name(*args)
            while True:
                try:
                    item = self._run(part, next, it) if self.on else next(it)
                except StopIteration:
                    return
                yield item

        return timed


def instrument(timers: Timers) -> None:
    """Time the vectorized engine's parts (class attributes are patched: this process runs benchmarks only)."""
    import torch

    from lcv_core.vectorized import batches as _vectorized_batches
    from lcv_core.vectorized import cohort as _vectorized_cohort
    from lcv_core.vectorized import engine as _vectorized
    from lcv_core.vectorized import grouped as _vectorized_grouped

    engine = _vectorized.VectorizedFolds
    engine.validate = timers.wrap("validation: the rest", engine.validate)  # type: ignore[method-assign]
    engine.write_back = timers.wrap("write back to the fold modules", engine.write_back)  # type: ignore[method-assign]

    def batches(self: Any, split: int, *_: Any) -> str:
        return f"{('train', 'validation')[split]}: batches of the folds"

    engine._steps = timers.wrap_iter(batches, engine._steps)  # type: ignore[method-assign]

    def step(self: Any, stage: str, *_: Any) -> str:
        return f"{stage}: forward, loss, logged values"

    for stepper in (_vectorized_batches._Stepper, _vectorized_grouped._GroupedStepper):
        stepper.__call__ = timers.wrap(step, stepper.__call__)  # type: ignore[method-assign]
    torch.autograd.backward = timers.wrap("training: backward", torch.autograd.backward)  # looked up per call
    cohort = _vectorized_cohort.Cohort
    cohort.step = timers.wrap("training: optimizer step, zero_grad", cohort.step)  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    """Time B and lcv vectorized alternately and print the parts of the lcv fit."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--module", action="store_true", help="the hand-written LightningModule instead of the learner")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: this thread's CPU time")
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter

    sys.path.insert(0, str(HERE))
    import torch

    torch.set_num_threads(1)
    import _child  # the benchmark's own runners: the same code paths as run.py
    import run

    for name in _child.IMPORTS["lcv"]:
        __import__(name)
    timers = Timers()
    instrument(timers)
    data = run.digits_data()
    spec = {"width": args.width, "epochs": args.epochs, "batch_size": 64, "lr": 1e-3, "n_classes": 10, "seed": 0}
    spec |= {"schedule": "vectorized", "learner": not args.module}
    walls: dict[str, list[float]] = {"B": [], "lcv": []}
    for repeat in range(args.repeats + 1):  # repeat 0 warms both up and is not counted
        for name in ("B", "lcv"):
            timers.on = name == "lcv" and repeat > 0
            t0 = CLOCK()
            _child.run_tensor_loop(data, spec) if name == "B" else _child.run_lcv(data, dict(spec))
            if repeat > 0:
                walls[name].append(CLOCK() - t0)
            timers.on = False
    b, lcv = statistics.median(walls["B"]), statistics.median(walls["lcv"])
    row = "learner" if not args.module else "hand-written module"
    clock = f"{args.clock} clock"
    print(f"digits, width {args.width}, {args.epochs} epochs, lcv vectorized ({row}), {args.repeats} repeats, {clock}")
    print(f"B {b * 1e3:.0f} ms, lcv {lcv * 1e3:.0f} ms: lcv = {lcv / b:.2f}× B (B = {b / lcv:.2f}× lcv)\n")
    n = args.repeats
    mean_fit = statistics.fmean(walls["lcv"])
    print(f"{'part of the lcv fit':38s} {'ms/fit':>8s} {'µs/call':>8s} {'calls/fit':>9s} {'share':>6s}")
    for name, seconds in sorted(timers.seconds.items(), key=lambda kv: -kv[1]):
        calls = timers.calls[name]
        print(
            f"{name:38s} {seconds / n * 1e3:8.1f} {seconds / calls * 1e6:8.1f} {calls // n:9d} "
            f"{seconds / n / mean_fit:6.1%}"
        )
    rest = mean_fit - sum(timers.seconds.values()) / n
    print(f"{'rest (setup, loop, callbacks, history)':38s} {rest * 1e3:8.1f} {'':8s} {'':9s} {rest / mean_fit:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
