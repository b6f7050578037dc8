"""Exponential moving average of model weights (the weights that get shipped)."""

from __future__ import annotations

import torch


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` with a warm-up on the decay, so
    early averages are not dominated by the random initialisation."""

    def __init__(self, parameters, decay: float = 0.999):
        self.params = [p for p in parameters if p.requires_grad]
        self.shadow = [p.detach().clone().float() for p in self.params]
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        """The decay of the next update: ``decay``, ramped up from 0.1 over the first updates."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the shadow weights towards the current parameters (after an optimizer step)."""
        d = self.current_decay()
        if self.shadow and self.shadow[0].device != self.params[0].device:
            # The parameters moved (accelerate's prepare puts them on the GPU after this
            # EMA was built from the CPU model): the shadow follows them.
            self.shadow = [s.to(p.device) for s, p in zip(self.shadow, self.params, strict=True)]
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach().float(), 1 - d)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, parameters) -> None:
        """Copy the shadow weights into ``parameters`` (those requiring grad, in order)."""
        for s, p in zip(self.shadow, [p for p in parameters if p.requires_grad], strict=True):
            p.copy_(s.to(p.dtype))

    def state_dict(self) -> dict:
        """Shadow weights, decay and update count (for accelerate's checkpoints)."""
        return {"shadow": self.shadow, "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore the state ``state_dict`` returned."""
        self.shadow = [s.clone() for s in state["shadow"]]
        self.decay = state["decay"]
        self.updates = state["updates"]
