"""The progress display as a user sees it: in a real terminal (tmux) at 80 and 120 columns, piped, and switched off.

The terminal tests run a real fit in a tmux pane of a fixed size and read the screen with ``tmux capture-pane`` while
it runs and after it ends. Without tmux they skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lcv_core.callbacks.base import Callback
from lcv_core.callbacks.progress import RichProgressBar, wrap_metrics
from lcv_core.trainer import CrossValidationTrainer

# A fit of TinyClassifier on IndexFolds (5 folds of 8 training batches, 3 epochs), slowed down per batch so that the
# live display can be read while it runs; then the summary table, as `lcv cv` prints it at the end.
SCRIPT = textwrap.dedent(
    """
    import json, sys, time

    import torch

    from lcv_core import CrossValidationTrainer
    from lcv_core.callbacks.base import Callback
    from lcv_core.callbacks.progress import RichProgressBar
    from lcv_core.demos import IndexFolds, TinyClassifier


    class Slow(Callback):
        def on_train_batch_end_per_fold(self, **kwargs):
            time.sleep(float(sys.argv[1]))


    torch.set_num_threads(1)
    trainer = CrossValidationTrainer(accelerator="cpu", devices=1, max_epochs=3, seed=0, callbacks=[Slow()])
    result = trainer.fit(TinyClassifier, IndexFolds())
    result.summary()
    bar = next(c for c in trainer.callbacks if isinstance(c, RichProgressBar))
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        json.dump({"lines": bar.lines}, fh)
    """
)

EXIT_MARK = "__lcv_test_exit"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CLOCK = r"\d+:\d\d:\d\d"
BAR_ROW = re.compile(rf"^epoch ([1-3])/3 · fold ([1-5])/5 [━╸╺]+ +(\d)/8 +{CLOCK} +ETA {CLOCK} +\d+\.\d it/s *$")


def _metric_items(lines: list[str]) -> list[str]:
    """The `name mean ± std` items of the plain epoch lines."""
    return [item for line in lines for item in line.split("  ")[1:]]


def _write_script(tmp_path: Path) -> Path:
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT, encoding="utf-8")
    return script


def _need_tmux() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        message = "tmux is not installed (apt-get install tmux): the progress display cannot be checked in a terminal"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; under CI=true these tests must run.")
        pytest.skip(message)
    return tmux


def _run_in_tmux(tmp_path: Path, width: int, delay: float) -> tuple[list[list[str]], list[str], dict[str, Any]]:
    """Run the fit in a detached tmux pane `width` columns wide; return the screens seen, the last one, its output."""
    tmux = _need_tmux()
    script, out = _write_script(tmp_path), tmp_path / "out.json"
    # a private server (no user config, this process's environment); COLUMNS/LINES would override the pane's size
    # the socket lives in a short directory: a Unix socket path longer than ~107 bytes cannot be bound (a CI checkout
    # under a deep path hit it)
    socket_dir = Path(tempfile.mkdtemp(prefix="lcv-tmux-", dir="/tmp"))
    server = [tmux, "-S", str(socket_dir / "s"), "-f", os.devnull]
    command = (
        f"env -u COLUMNS -u LINES -u FORCE_COLOR -u TTY_COMPATIBLE -u TTY_INTERACTIVE "
        f"{sys.executable} {script} {delay} {out}; echo {EXIT_MARK} $?; sleep 600"
    )
    subprocess.run([*server, "new-session", "-d", "-x", str(width), "-y", "40", command], check=True)
    screens: list[list[str]] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            screen = subprocess.run(
                [*server, "capture-pane", "-p", "-S", "-200"], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            screens.append(screen)
            if any(line.startswith(EXIT_MARK) for line in screen):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the fit in tmux did not end within 300 s:\n" + "\n".join(screens[-1]))
    finally:
        subprocess.run([*server, "kill-server"], check=False)
        shutil.rmtree(socket_dir, ignore_errors=True)
    last = [line.rstrip() for line in screens[-1] if line.strip()]
    assert f"{EXIT_MARK} 0" in last, "\n".join(last)
    return screens, last, json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("width", [80, 120])
def test_live_display_in_a_terminal(tmp_path: Path, width: int) -> None:
    screens, last, out = _run_in_tmux(tmp_path, width, delay=0.04)

    # mid-run: the bar of the fold in training, fold i/k, batch n/N, elapsed time, ETA and rate on one row
    rows = [m for screen in screens for line in screen if (m := BAR_ROW.match(line.rstrip()))]
    assert rows, "no live bar row seen:\n" + "\n".join(screens[len(screens) // 2])
    assert {m.group(1) for m in rows} >= {"1", "2", "3"}  # every epoch was seen
    assert any(0 < int(m.group(3)) < 8 for m in rows)  # the batch count moves within a fold
    # the fold means have their own line(s) below the bar, wrapped between metrics
    live_means = [line for screen in screens for line in screen if line.startswith("fold means, epoch 2/3:")]
    assert live_means

    # after the run: one kept line per epoch, each metric whole on one line, then the summary table
    items = _metric_items(out["lines"])
    assert len(out["lines"]) == 3 and len(items) == 9
    for epoch in (1, 2, 3):
        assert sum(line.startswith(f"epoch {epoch}/3  ") for line in last) == 1, "\n".join(last)
    for item in items:  # `val_acc 0.6067 ± 0.0723` never cut across lines
        assert any(item in line for line in last), f"{item!r} is not whole on a line:\n" + "\n".join(last)
    assert all(len(line) <= width for line in last)
    if width >= 120:  # a whole epoch line fits
        assert all(line in last for line in out["lines"])
    assert re.search(r"^120 batches of 5 folds in \d+:\d\d:\d\d, \d+\.\d it/s$", "\n".join(last), re.M)
    table = "\n".join(last[next(i for i, line in enumerate(last) if "5-fold CV, best epoch" in line) :])
    assert re.search(r"│ mean ± std │ \d\.\d{4} ± \d\.\d{4} │", table)
    assert not any(BAR_ROW.match(line) for line in last)  # the live area is gone


def test_piped_output_is_plain_lines(tmp_path: Path) -> None:
    script, out = _write_script(tmp_path), tmp_path / "out.json"
    # FORCE_COLOR makes rich treat a pipe as a terminal; the display still prints plain lines there
    env = {**os.environ, "FORCE_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), "0", str(out)], capture_output=True, text=True, check=True, env=env
    )
    assert not ANSI.search(proc.stdout), proc.stdout
    lines = json.loads(out.read_text(encoding="utf-8"))["lines"]
    stdout = proc.stdout.splitlines()
    assert stdout[0].startswith("schedule='auto' chose 'interleaved'")  # the default schedule says what it chose
    assert stdout[1:4] == lines  # then one plain line per epoch, nothing else before the table
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(re.fullmatch(r"\w+ \d\.\d{4} ± \d\.\d{4}", item) for item in _metric_items(lines))
    assert "5-fold CV, best epoch" in stdout[4]


def test_disabled_progress_bar_prints_nothing(data, tiny, trainer_kwargs, capfd) -> None:
    trainer = CrossValidationTrainer(**{**trainer_kwargs, "enable_progress_bar": False, "limit_train_batches": 2})
    trainer.fit(tiny, data)
    assert not any(isinstance(c, RichProgressBar) for c in trainer.callbacks)
    assert capfd.readouterr().out == ""


class _PauseInLastFold(Callback):
    """Pause in the last fold's first batch of each epoch, long enough for the live display to redraw."""

    def on_train_batch_end_per_fold(self, *, fold: int, batch_idx: int, **kwargs: Any) -> None:
        if fold == 4 and batch_idx == 0:
            time.sleep(0.6)


def test_live_display_on_a_given_console_keeps_epoch_lines_within_its_width(data, tiny, trainer_kwargs) -> None:
    out = io.StringIO()
    bar = RichProgressBar(console=Console(file=out, force_terminal=True, width=80))
    kwargs = {**trainer_kwargs, "limit_train_batches": 2}
    result = CrossValidationTrainer(**kwargs, callbacks=[bar, _PauseInLastFold()]).fit(tiny, data)
    text = ANSI.sub("", out.getvalue()).replace("\r", "\n")  # each redraw starts a line
    assert re.search(r"epoch 2/2 · fold 5/5 [━╸╺]+ +[0-2]/2 ", text)
    final = result.metric("val_loss", 1)
    assert f"val_loss {final.mean:.4f} ± {final.std:.4f}" in text
    assert "20 batches of 5 folds in " in text  # 2 epochs × 5 folds × 2 batches
    assert len(bar.lines) == 2 and not bar.is_live


def test_sequential_schedule_keeps_a_line_per_finished_fold(data, tiny, trainer_kwargs) -> None:
    out = io.StringIO()
    bar = RichProgressBar(console=Console(file=out, force_terminal=True, width=120))
    kwargs = {**trainer_kwargs, "limit_train_batches": 2, "schedule": "sequential"}
    CrossValidationTrainer(**kwargs, callbacks=[bar, _PauseInLastFold()]).fit(tiny, data)
    text = ANSI.sub("", out.getvalue()).replace("\r", "\n")  # each redraw starts a line
    assert re.search(r"fold 5/5 · epoch [12]/2 [━╸╺]+ +[0-2]/2 ", text)
    for fold in range(1, 6):
        assert re.search(rf"^fold {fold}/5 done, epoch 2/2  train_loss \d\.\d{{4}}  val_acc ", text, re.M)
    assert re.search(r"^epoch 2/2  train_loss \d\.\d{4} ± \d\.\d{4}", text, re.M)


@pytest.mark.parametrize("width", [40, 80])
def test_wrap_metrics_breaks_between_metrics_only(width: int) -> None:
    items = [f"{name} 0.9738 ± 0.0097" for name in ("train_loss", "val_acc", "val_loss", "val_f1_macro")]
    lines = wrap_metrics("epoch 10/10", items, width)
    assert all(len(line) <= width for line in lines)
    assert [i for line in lines for i in line.strip().split("  ")] == ["epoch 10/10", *items]
    assert wrap_metrics("", ["a" * 50], 20) == ["a" * 50]  # too long for any line: alone on its own
