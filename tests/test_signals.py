"""SIGTERM is handled as Ctrl-C is: it raises Terminated (a KeyboardInterrupt) in the main thread,
and is remembered, so the CLI says so (exit code 143) even when a library re-raised the
interrupt as a plain KeyboardInterrupt. The end to end case, a grid driver: tests/test_lock.py."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dlmia import signals
from dlmia.cli import main


def test_sigterm_raises_terminated_and_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signals, "_received", [])
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signals.raise_on_sigterm()
        assert not signals.terminated()
        with pytest.raises(signals.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        assert signals.terminated()
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize(("received", "code", "word"),
                         [([], 130, "interrupted"), ([15], 143, "terminated")])
def test_an_interrupt_ends_the_cli_with_the_signals_exit_code(
    received: list[int], code: int, word: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt  # as ray.wait re-raises a SIGTERM

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(signals, "_received", received)
    monkeypatch.setattr("tune.cli.grid_validate", interrupted)
    try:
        assert main(["grid", "validate", "x.yaml"]) == code
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err == f"dlmia: {word}; rerun to resume\n"
