"""The conformance suite of training-loop callbacks (``lcv.callbacks``)."""

from __future__ import annotations

import copy
import inspect
from typing import Any

from lcv_config.errors import did_you_mean
from lcv_config.testing.assertions import assert_close


def _plain_data(value: Any, where: str = "state") -> list[str]:
    """Return where ``value`` holds something ``torch.load(weights_only=True)`` refuses (tensors are fine)."""
    if value is None or isinstance(value, bool | int | float | str):
        return []
    if type(value).__module__.split(".")[0] == "torch":
        return []
    if isinstance(value, dict):
        bad = [f"{where}: key {k!r}" for k in value if not isinstance(k, str | int)]
        return bad + [b for k, v in value.items() for b in _plain_data(v, f"{where}[{k!r}]")]
    if isinstance(value, list | tuple):
        return [b for i, v in enumerate(value) for b in _plain_data(v, f"{where}[{i}]")]
    return [f"{where}: {type(value).__module__}.{type(value).__qualname__}"]


class CallbackContract:
    """What a callback (``lcv.callbacks``) must do: hooks lcv knows, keyword payloads, a checkpoint-safe state.

    lcv builds it as ``Callback(**cfg)`` and calls each hook through ``Fabric.call`` with keyword arguments
    only, passing a method just the payload names its signature lists. Implement `make_callback()` and set
    ``hooks_from = lcv_core.Callback`` (the hook names and payloads are read from it).
    """

    hooks_from: Any = None
    """The class whose ``on_*`` methods are the hooks (``lcv_core.Callback``); without it, signatures only."""

    def make_callback(self) -> Any:
        """Return the callback under test."""
        raise NotImplementedError

    def _hooks(self, callback: Any) -> dict[str, Any]:
        return {
            n: getattr(callback, n) for n in dir(callback) if n.startswith("on_") and callable(getattr(callback, n))
        }

    def test_every_hook_is_one_lcv_calls(self) -> None:
        """Each ``on_*`` method is a hook of ``hooks_from`` (a misspelt hook is never called)."""
        if self.hooks_from is None:
            return
        known = [n for n in dir(self.hooks_from) if n.startswith("on_")]
        unknown = [n for n in self._hooks(self.make_callback()) if n not in known]
        hints = "".join(f" '{n}':{did_you_mean(n, known) or ' no close hook.'}" for n in unknown)
        assert not unknown, f"lcv never calls {unknown}.{hints}"

    def test_hooks_take_keyword_payloads(self) -> None:
        """Each hook takes keyword arguments and requires none that lcv does not pass."""
        problems = []
        for name, method in self._hooks(self.make_callback()).items():
            params = list(inspect.signature(method).parameters.values())
            payload = set()
            base = getattr(self.hooks_from, name, None) if self.hooks_from is not None else None
            if base is not None:
                payload = {p.name for p in inspect.signature(base).parameters.values() if p.name != "self"}
            for p in params:
                if p.kind is p.POSITIONAL_ONLY:
                    problems.append(f"{name}: '{p.name}' is positional-only; lcv passes keywords")
                elif p.kind is p.VAR_POSITIONAL:
                    continue
                elif (
                    p.default is p.empty and p.kind is not p.VAR_KEYWORD and base is not None and p.name not in payload
                ):
                    problems.append(
                        f"{name}: requires '{p.name}', which lcv does not pass (it passes {sorted(payload)})"
                    )
        assert not problems, "; ".join(problems)

    def test_state_round_trip(self) -> None:
        """A ``state_dict()``, when present, is plain data and loads into a fresh callback.

        Checkpoints are read with ``torch.load(weights_only=True)``, which refuses other objects.
        """
        callback = self.make_callback()
        saves = callable(getattr(callback, "state_dict", None)) and callable(getattr(callback, "load_state_dict", None))
        if not saves:
            return
        state = callback.state_dict()
        bad = _plain_data(state)
        assert not bad, f"state_dict() holds values a weights-only checkpoint refuses: {bad[:5]}"
        fresh = self.make_callback()
        fresh.load_state_dict(copy.deepcopy(state))
        assert_close(fresh.state_dict(), state, "state after load_state_dict")
