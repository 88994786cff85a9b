"""``torch.compile`` for each fold's module (``TrainerConfig.compile``), the way Lightning's ``Trainer.fit`` does it.

Lightning's ``Trainer.fit(torch.compile(model))`` unwraps the compiled module and compiles the methods it calls
(``forward``, ``training_step``, ``validation_step``, ``test_step``, ``predict_step``) on the module itself, with the
arguments given to ``torch.compile`` (``lightning.pytorch.utilities.compile.from_compiled``). lcv does the same for
each fold's module after its setup, so the module stays the user's class: its ``state_dict`` keys have no
``_orig_mod.`` prefix, and checkpoints load into a plain module. After the fit the fold models are uncompiled
(``to_uncompiled``) before they are returned.

``self.log`` is kept out of the compiled graph (``torch.compiler.disable``), as Lightning does since torch 2.12:
logging is eager bookkeeping, and tracing it breaks or recompiles the graph.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities.compile import from_compiled, to_uncompiled

from lcv_config import LcvError
from lcv_config.schema import CompileConfig

COMPILED_METHODS = ("forward", "training_step", "validation_step", "test_step", "predict_step")
"""The methods Lightning's ``from_compiled`` compiles on the module (and ``to_uncompiled`` restores)."""

LOGGING_METHODS = ("log", "log_dict")
"""The module's logging methods, kept out of the compiled graph."""


def _did_you_mean(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=2)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def compile_arguments(setting: bool | CompileConfig | Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the keyword arguments of ``torch.compile`` that ``setting`` asks for, checked; ``None`` when off.

    ``True`` is torch's defaults (the inductor backend); a `CompileConfig` (or a mapping of its fields) gives them.

    Raises:
        LcvError: A backend or an inductor option the installed torch does not have (the closest names suggested),
            or arguments ``torch.compile`` refuses.
    """
    if setting is False:
        return None
    config = setting if isinstance(setting, CompileConfig) else CompileConfig(**({} if setting is True else setting))
    arguments = config.model_dump()
    check_arguments(arguments)
    return arguments


def check_arguments(arguments: Mapping[str, Any]) -> None:
    """Refuse ``torch.compile`` arguments the installed torch cannot use, before any fold trains.

    Raises:
        LcvError: An unknown backend or inductor option (with the closest names), or torch's own refusal.
    """
    backend = arguments.get("backend", "inductor")
    if isinstance(backend, str):
        backends = sorted(torch.compiler.list_backends(exclude_tags=()))
        if backend not in backends:
            raise LcvError(
                f"Unknown trainer.compile.backend {backend!r}.{_did_you_mean(backend, backends)} Installed backends: "
                f"{', '.join(torch.compiler.list_backends())} (and for debugging: aot_eager, eager)."
            )
    options = arguments.get("options") or {}
    if backend == "inductor" and options:
        valid = list(torch._inductor.list_options())
        for key in options:
            if key not in valid:
                raise LcvError(
                    f"Unknown trainer.compile.options key {key!r} for the inductor backend.{_did_you_mean(key, valid)}"
                    " torch._inductor.list_options() lists the valid keys."
                )
    try:  # torch checks the rest (mode names of this torch version, mode with options) when it builds the wrapper
        torch.compile(_identity, **arguments)
    except Exception as exc:  # noqa: BLE001  # any refusal by torch becomes lcv's error naming the setting
        raise LcvError(f"torch.compile refuses trainer.compile={dict(arguments)!r}: {exc}") from None


def _identity(x: Any) -> Any:
    return x


def compile_module(module: LightningModule, arguments: Mapping[str, Any]) -> None:
    """Compile ``module``'s step methods in place, as ``Trainer.fit(torch.compile(module, **arguments))`` does.

    The module's ``self.log``/``self.log_dict`` (as they are now: lcv's redirection into the fold's metric log) run
    eagerly, outside the graph.
    """
    for name in LOGGING_METHODS:
        setattr(module, name, torch.compiler.disable(getattr(module, name)))  # type: ignore[no-untyped-call]  # untyped in torch
    from_compiled(torch.compile(module, **arguments))  # type: ignore[arg-type]  # an OptimizedModule, as Lightning's


def uncompile_module(module: LightningModule) -> None:
    """Give ``module`` back its own methods (undo `compile_module()`): it pickles, deep-copies and exports as before."""
    to_uncompiled(module)
    for name in COMPILED_METHODS:  # to_uncompiled sets the original bound methods; drop them, the class has them
        bound = module.__dict__.get(name)
        if getattr(bound, "__self__", None) is module and getattr(bound, "__func__", None) is getattr(
            type(module), name
        ):
            del module.__dict__[name]


def unwrap_compiled(model: Any) -> tuple[Any, dict[str, Any] | None]:
    """Return the module inside a ``torch.compile``'d model and the arguments it was compiled with.

    A model that is not compiled comes back unchanged, with ``None``.

    Raises:
        LcvError: A compiled model whose arguments are unknown (compiled before ``lightning`` was imported).
    """
    from lcv_core.core.lightning_compat import compiled_module_and_arguments

    try:
        return compiled_module_and_arguments(model)
    except RuntimeError as exc:
        raise LcvError(
            f"The model was compiled with torch.compile before lightning was imported, so the arguments it was "
            f"compiled with are unknown ({exc}). Pass the module itself and compile=True (or trainer.compile: "
            "{mode: ..., backend: ...} in a config): lcv compiles each fold's module."
        ) from None
