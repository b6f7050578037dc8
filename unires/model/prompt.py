"""Prompt encoders: text prompt -> the sequence of embeddings the UNet cross-attends to.

Two implementations behind one method, ``encode(prompts) -> (B, L, D)``:
- ``TaskPromptTable``: a learned table, one row of tokens per known prompt. Small models
  only ever see a handful of constant prompts (paper Tab. 1), so a text encoder is wasted.
- ``CLIPPromptEncoder``: tokenizer + CLIP text encoder, as in Stable-Diffusion checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class PromptEncoder(Protocol):
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Embeddings (B, tokens, width) of B prompt strings."""


class UnknownPromptError(ValueError):
    pass


class TaskPromptTable(ModelMixin, ConfigMixin):
    """A learned embedding (``tokens`` x ``embed_dim``) for each of a fixed set of prompts.

    The empty prompt (blind restoration / dropped text condition) has its own learned row,
    as the empty string has its own encoding in a text encoder.
    """

    @register_to_config
    def __init__(self, prompts: list[str], embed_dim: int = 256, tokens: int = 4):
        super().__init__()
        if len(set(prompts)) != len(prompts):
            raise ValueError("duplicate prompts in the prompt table")
        self.embedding = nn.Parameter(torch.randn(len(prompts), tokens, embed_dim) * 0.02)
        self._index = {p: i for i, p in enumerate(prompts)}

    def index(self, prompts: list[str]) -> torch.Tensor:
        """Row indices (B,) of the prompts in the table.

        Raises:
            UnknownPromptError: a prompt the table does not hold.
        """
        try:
            rows = [self._index[p] for p in prompts]
        except KeyError as e:
            known = ", ".join(repr(p) for p in self.config.prompts)
            raise UnknownPromptError(
                f"prompt {e.args[0]!r} is not in this model's prompt table ({known})"
            ) from None
        return torch.tensor(rows, dtype=torch.long, device=self.embedding.device)

    def forward(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, tokens, width) of the table rows ``prompt_ids`` (B,)."""
        return self.embedding[prompt_ids]

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Embeddings (B, tokens, width) of B prompts of the table (``UnknownPromptError`` otherwise)."""
        return self(self.index(prompts))


class CLIPPromptEncoder(nn.Module):
    """Tokenizer + CLIP text encoder (Stable-Diffusion style: last hidden state)."""

    def __init__(self, tokenizer, text_encoder):
        super().__init__()
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder

    @classmethod
    def from_pretrained(cls, folder: str | Path, torch_dtype: torch.dtype | None = None):
        """The CLIP tokenizer and text encoder of a folder (``tokenizer/``, ``text_encoder/``), offline.

        Raises:
            ImportError: transformers is not installed (the ``sd`` extra).
        """
        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError:
            raise ImportError(
                f"{folder}: a CLIP text encoder needs transformers: pip install 'unires[sd]'"
            ) from None

        folder = Path(folder)
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}
        text_encoder = CLIPTextModel.from_pretrained(
            folder / "text_encoder", local_files_only=True, **kwargs
        )
        return cls(tokenizer, text_encoder)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``tokenizer/`` and ``text_encoder/`` (safetensors) under ``folder``."""
        folder = Path(folder)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        self.text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)

    @property
    def device(self) -> torch.device:
        """The text encoder's device."""
        return self.text_encoder.device

    @property
    def dtype(self) -> torch.dtype:
        """The text encoder's dtype."""
        return self.text_encoder.dtype

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """CLIP's last hidden states (B, 77, width) of B prompts (padded or truncated to 77 tokens)."""
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        return self.text_encoder(ids)[0]
