"""Stage `verify`: every pruned entry is an exact zero (what the exporter writes), then the pruned
module is measured on the same samples as the dense one."""

from __future__ import annotations

import torch

from .state import RunState, Verified
from .stages import register_stage


@register_stage("verify")
def verify(state: RunState) -> Verified:
    module, pruned = state.loaded.module, state.pruned
    for name, mask in pruned.result.masks.masks.items():
        if torch.count_nonzero(module.parameter(name).detach()[~mask]):
            raise RuntimeError(f"pruned entries of {name} are not zero after {state.options.method}")
    return Verified(state.timed("evaluate_s", lambda: pruned.session.evaluate(module)))
