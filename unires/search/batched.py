"""Many weight sets of ONE image restored together (the search's workhorse).

The LQ / DownLQ encodings and the start noise are computed once per image
(``UniResPipeline.prepare``). ``CandidateMixture`` is a model wrapper of the same kind as
``TaskMixture``, run by the one DDIM loop (``sample_unires_ddim``): every candidate starts
from the same x_T, so the first DDIM step needs each task's prediction only once, for all
candidates together; later steps evaluate one (candidate, task) pair per non-zero weight,
batched into as few network calls (``Denoiser``) as memory allows. Eq. 2 itself is
``combine_task_predictions``; this module only gathers its inputs.

Deterministic DDIM (eta = 0) only: with eta > 0 each candidate would draw its own noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from ..pipeline import PreparedImage
from ..sampling.ddim import (
    combine_task_predictions,
    make_scheduler,
    sample_unires_ddim,
    strength_timesteps,
)
from ..tasks import get_task
from ..weights import active_weights, validate_weights

if TYPE_CHECKING:
    from ..model.denoiser import Denoiser

# Network calls that would be wider than this many (candidate, task) pairs are split (CPU: small
# batches are as fast per item; GPU: see ``pairs_per_call``).
MAX_PAIRS_PER_CALL = 64
DECODE_BATCH = 8


def weight_matrix(weight_sets: Sequence[Mapping[str, float]]) -> tuple[list[str], torch.Tensor]:
    """The tasks used by any set (first-seen order) and the N x K matrix of weights."""
    clean = [validate_weights(w) for w in weight_sets]
    tasks = list(dict.fromkeys(k for w in clean for k in active_weights(w)))
    rows = [[w.get(k, 0.0) for k in tasks] for w in clean]
    return tasks, torch.tensor(rows, dtype=torch.float64).reshape(len(clean), len(tasks))


class CandidateMixture:
    """Model ``(z_t, t) -> mixed model output`` for n weight sets (candidates) of ONE image:
    the search's ``TaskMixture``, run by the same ``sample_unires_ddim`` loop.

    ``cond_latents`` / ``prompt_embeds`` map task code -> (1, C, h, w) condition input
    (``Denoiser.condition`` applied) / (L, D) prompt embedding; ``weights`` is the n x K
    matrix of ``weight_matrix`` over ``tasks``. Called with z_t (n, C, h, w), one latent per
    candidate (or (1, C, h, w) shared by all), it returns (n, C, h, w), Eq. 2 per candidate.

    ``start`` = (x_T (1, C, h, w), first timestep): every candidate starts there, so that
    step needs each task's prediction only once, for all candidates and all calls together
    (``first_predictions``). Other steps evaluate one (candidate, task) pair per non-zero
    weight, at most ``max_pairs`` per network call. ``evaluations`` counts network
    evaluations: one task prediction for one latent at one step.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        cond_latents: Mapping[str, torch.Tensor],
        prompt_embeds: Mapping[str, torch.Tensor],
        tasks: Sequence[str],
        weights: torch.Tensor,
        *,
        start: tuple[torch.Tensor, torch.Tensor] | None = None,
        max_pairs: int | None = None,
    ):
        self.denoiser = denoiser
        self.cond = dict(cond_latents)
        self.embeds = dict(prompt_embeds)
        self.tasks, self.weights = list(tasks), weights
        self.start = start
        self.max_pairs = max_pairs or MAX_PAIRS_PER_CALL
        self.evaluations = 0
        self._first: torch.Tensor | None = None

    @torch.no_grad()
    def evaluate(self, z: torch.Tensor, t, task_codes: Sequence[str]) -> torch.Tensor:
        """One network evaluation per row: latent z[i] (n, C, h, w) with the condition and
        prompt of task ``task_codes[i]``; returns (n, C, h, w) model outputs."""
        cond = torch.cat([self.cond[k] for k in task_codes])
        ctx = torch.stack([self.embeds[k] for k in task_codes])
        out = self.denoiser(z, t, cond, ctx)
        self.evaluations += len(task_codes)
        return out

    def shared_predictions(self, z: torch.Tensor, t) -> torch.Tensor:
        """Every task's prediction for ONE latent shared by all candidates: (K, 1, C, h, w)."""
        return self.evaluate(z.expand(len(self.tasks), *z.shape[1:]), t, self.tasks).unsqueeze(1)

    def candidate_predictions(self, z: torch.Tensor, t, rows: Sequence[int]) -> torch.Tensor:
        """(K, n, C, h, w) predictions for candidates ``rows`` on their own latents z (n, ...);
        only pairs with a non-zero weight are evaluated (the others stay 0 and weigh 0)."""
        k = len(self.tasks)
        pairs = [(i, j) for i, r in enumerate(rows) for j in range(k) if self.weights[r, j] != 0]
        preds = z.new_zeros(len(self.tasks), len(rows), *z.shape[1:])
        for s in range(0, len(pairs), self.max_pairs):
            chunk = pairs[s : s + self.max_pairs]
            idx = torch.tensor([i for i, _ in chunk])
            out = self.evaluate(z[idx], t, [self.tasks[j] for _, j in chunk])
            for (i, j), o in zip(chunk, out, strict=True):
                preds[j, i] = o
        return preds

    def mix(self, preds: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """Eq. 2 per candidate. ``preds`` is (K, n, ...) or (K, 1, ...) shared by all rows."""
        outs = []
        for i, r in enumerate(rows):
            own = preds[:, i if preds.shape[1] > 1 else 0]
            outs.append(combine_task_predictions(own, self.weights[r].float()))
        return torch.stack(outs)

    def first_predictions(self) -> torch.Tensor:
        """The shared first step's task predictions (K, 1, C, h, w), computed once.

        Raises:
            ValueError: the mixture was built without a start latent.
        """
        if self.start is None:
            raise ValueError("this mixture was given no start latent")
        if self._first is None:
            self._first = self.shared_predictions(*self.start)
        return self._first

    def at_start(self, z: torch.Tensor, t) -> bool:
        """Whether every row of z is the shared start latent at the first timestep."""
        if self.start is None:
            return False
        x_T, t0 = self.start
        return int(t) == int(t0) and torch.equal(z, x_T.expand_as(z))

    def __call__(self, z: torch.Tensor, t, rows: Sequence[int] | None = None) -> torch.Tensor:
        """Mixed model outputs (n, C, h, w) of candidates ``rows`` (all by default)."""
        rows = range(len(self.weights)) if rows is None else rows
        if self.at_start(z, t):
            preds = self.first_predictions()
        else:
            preds = self.candidate_predictions(z.expand(len(rows), *z.shape[1:]), t, rows)
        return self.mix(preds, rows)


class CandidateSampler:
    """Deterministic DDIM for N weight sets of one prepared image: a ``CandidateMixture``
    (``mixture``) over the pipeline's denoiser, run by ``sample_unires_ddim``.

    ``evaluations`` counts network evaluations: one task prediction for one latent at one
    step. ``step`` is one DDIM step, for searches that prune candidates between steps.
    """

    def __init__(
        self,
        pipe,
        prepared: PreparedImage,
        weight_sets: Sequence[Mapping[str, float]],
        steps: int,
        *,
        strength: float = 1.0,
        max_pairs: int | None = None,
    ):
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        self.pipe = pipe
        self.prepared = prepared
        self.steps, self.strength = steps, strength
        self.tasks, self.weights = weight_matrix(weight_sets)
        self.scheduler = make_scheduler(pipe.scheduler_config, steps)
        self.timesteps = list(strength_timesteps(self.scheduler, strength))
        missing = {get_task(k).condition for k in self.tasks} - set(prepared.cond)
        if missing:
            raise ValueError(
                f"prepared image lacks condition(s) {sorted(c.value for c in missing)}"
            )
        self.mixture = CandidateMixture(
            pipe.denoiser,
            {k: prepared.cond[get_task(k).condition] for k in self.tasks},
            {k: pipe.prompt_embedding(k) for k in self.tasks},
            self.tasks,
            self.weights,
            start=(self.start, self.timesteps[0]),
            max_pairs=max_pairs,
        )

    @property
    def evaluations(self) -> int:
        """UNet evaluations spent so far (one task, one latent, one step each)."""
        return self.mixture.evaluations

    @property
    def start(self) -> torch.Tensor:
        """x_T shared by every candidate (1 x C x h x w)."""
        p = self.prepared
        if len(self.timesteps) == len(self.scheduler.timesteps):
            return p.noise
        return self.scheduler.add_noise(p.x0_init, p.noise, self.timesteps[0].reshape(1))

    def step(self, model_output: torch.Tensor, i: int, z: torch.Tensor):
        """One DDIM step (eta = 0) for a batch: returns (x_{t-1}, predicted x_0)."""
        z = z.expand_as(model_output)
        out = self.scheduler.step(model_output, self.timesteps[i], z, eta=0.0)
        return out.prev_sample, out.pred_original_sample

    def run(self, rows: Sequence[int] | None = None) -> torch.Tensor:
        """Final latents of candidates ``rows`` (all by default): (n, C, h, w)."""
        rows = list(range(len(self.weights))) if rows is None else list(rows)
        p = self.prepared
        return sample_unires_ddim(
            lambda z, t: self.mixture(z, t, rows),
            p.noise,
            self.pipe.scheduler_config,
            self.steps,
            disable=True,
            strength=self.strength,
            x0_init=p.x0_init,
        )


@torch.no_grad()
def decode_candidates(
    pipe, prepared: PreparedImage, latents: torch.Tensor, *, color_fix=None, tiles=None
) -> torch.Tensor:
    """Sampled latents (n, C, h, w) -> images n x 3 x H x W in [0, 1] on the CPU, finished
    exactly as ``restore_tensor`` finishes them, DECODE_BATCH at a time."""
    return torch.cat(
        [
            pipe.finish(prepared, latents[s : s + DECODE_BATCH], tiles, color_fix)
            for s in range(0, len(latents), DECODE_BATCH)
        ]
    )


def restore_in_chunks(
    sampler: CandidateSampler,
    *,
    color_fix: str | None = None,
    tiles=None,
    chunk: int = 4 * DECODE_BATCH,
    share: tuple[int, int] = (0, 1),
) -> Iterator[tuple[range, torch.Tensor]]:
    """Yield (candidate indices, their images) ``chunk`` candidates at a time, so that callers
    can save progress; the first step is shared by all chunks (``sampler.evaluations``).

    ``share`` = (index, count): only every count-th chunk from the index-th, for one of
    ``count`` processes splitting the candidates (``unires.parallel``). The chunks are the
    same whatever the count, so each candidate's image is the same bits as in one process.
    """
    n = len(sampler.weights)
    index, count = share
    for s in range(index * chunk, n, count * chunk):
        rows = range(s, min(n, s + chunk))
        latents = sampler.run(rows)
        yield (
            rows,
            decode_candidates(
                sampler.pipe, sampler.prepared, latents, color_fix=color_fix, tiles=tiles
            ),
        )


def restore_candidates(
    pipe,
    lq: torch.Tensor,
    weight_sets: Sequence[Mapping[str, float]],
    *,
    steps: int | None = None,
    seed: int = 0,
    scale: int = 1,
    color_fix: str | None = None,
    downlq_factor: int | None = None,
    tiles=None,
    strength: float = 1.0,
) -> tuple[torch.Tensor, int]:
    """Restore one image ``lq`` with every weight set: (n x 3 x H x W images, network
    evaluations). Same images as ``pipe.restore_tensor`` one set at a time (eta = 0)."""
    prepared = pipe.prepare(lq, seed=seed, scale=scale, downlq_factor=downlq_factor, tiles=tiles)
    steps = steps or pipe.settings.default_steps
    sampler = CandidateSampler(pipe, prepared, weight_sets, steps, strength=strength)
    chunks = restore_in_chunks(sampler, color_fix=color_fix, tiles=tiles)
    return torch.cat([images for _, images in chunks]), sampler.evaluations
