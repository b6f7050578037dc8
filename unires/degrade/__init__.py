"""Synthetic degradations: kernels, noise, JPEG and the recipes built from them.

Every operator takes images as float32 tensors in [0, 1] of shape (B, 3, H, W) and a
``torch.Generator``, and returns ``(image, params)`` with ``params`` a list of one
JSON-serialisable dict per sample. ``recipes.RECIPES`` names the complete recipes.
"""
