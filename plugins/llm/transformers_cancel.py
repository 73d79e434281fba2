"""Stopping a transformers backend from another thread, as a batch run does on Ctrl-C: ``cancel()`` makes a
running ``generate`` stop after its current token and every later call raise ``KeyboardInterrupt``, so the
items still in flight end at once instead of finishing unseen; ``resume()`` allows calls again.

The check is a ``StoppingCriteria``: transformers calls it after each decoded token, for the whole batch."""

from __future__ import annotations

import threading
from typing import Any


def _stopping_criteria(flag: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenCancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), flag.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWhenCancelled()])


class CancelMethods:
    """``cancel`` / ``resume`` for a plugin whose ``_setup`` calls ``_init_cancel``; its ``generate`` calls
    pass ``stopping_criteria=self._stop_when_cancelled``."""

    model_id: str
    _cancelled: threading.Event
    _stop_when_cancelled: Any

    def _init_cancel(self) -> None:
        self._cancelled = threading.Event()
        self._stop_when_cancelled = _stopping_criteria(self._cancelled)  # stateless: one for every call

    def cancel(self) -> None:
        """Stop the running call after its current token; later calls raise until ``resume()``."""
        self._cancelled.set()

    def resume(self) -> None:
        self._cancelled.clear()

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise KeyboardInterrupt(f"{self.model_id}: model calls are cancelled")
