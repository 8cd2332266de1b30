"""Lovász losses (Berman et al. 2018) as pure functions, vectorised: one sort per class for all pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segkit.losses.functional import _check_mode, check_binary_inputs, check_multiclass_inputs, onehot

__all__ = ["lovasz_hinge_loss", "lovasz_softmax_loss"]


def _lovasz_rows(errors: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    """Lovász extension of the Jaccard loss for each row of ``errors``.

    Args:
        errors: ``(R, P)`` float, differentiable; entries < 0 mark ignored pixels. They are sorted after every
            valid one and contribute nothing, so the Jaccard prefixes of the valid entries are those of the valid
            set alone.
        fg: ``(R, P)`` float in {0, 1}, the ground truth of each row (0 on ignored entries).

    Returns:
        ``(R,)`` the loss ``<sorted errors, Lovász gradient>`` of each row (0 for a row without foreground or
        without valid entries, as the gradient is then 0 everywhere).
    """
    # One differentiable sort per row (values and indices); only the ground truth is gathered.
    err, order = errors.sort(dim=1, descending=True)
    err = err.clamp_min(0)
    gt = fg.gather(1, order)
    gts = gt.sum(1, keepdim=True)
    intersection = gts - gt.cumsum(1)
    union = gts + (1 - gt).cumsum(1)
    jaccard = 1 - intersection / union
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (err * grad).sum(1)


def lovasz_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    classes: str = "present",
    per_image: bool = False,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Lovász-Softmax loss (Berman et al. 2018, Algorithm 1) on softmax probabilities.

    Per class, the errors ``|t_c - p_c|`` over a pixel set are sorted and dotted with the gradient of the Lovász
    extension of the Jaccard loss. ``per_image=False`` uses the whole batch as one set (one sort per class,
    all classes at once); ``True`` averages over images (rows sorted together, no Python loop).
    ``classes="present"`` averages over the classes present in the valid target of the set, ``"all"`` over every
    class. A set whose pixels are all ignored contributes 0 and is counted in the mean over images.

    Returns:
        Scalar tensor.
    """
    if classes not in ("present", "all"):
        raise ValueError(f"classes: expected 'present' or 'all', got {classes!r}")
    check_multiclass_inputs(logits, target, ignore_index)
    n, c = logits.shape[:2]
    p = torch.softmax(logits, 1)
    valid = target != ignore_index
    fg = onehot(target, c, p.dtype, ignore_index)
    # |t - p| in [0, 1] on valid pixels, -1 on ignored ones (sorted last, clamped to 0 after the sort).
    errors = (fg - p).abs().masked_fill(~valid.unsqueeze(1), -1.0)
    if per_image:
        sets = n
        err_rows, fg_rows = errors.reshape(n * c, -1), fg.reshape(n * c, -1)
    else:
        sets = 1
        err_rows, fg_rows = errors.transpose(0, 1).reshape(c, -1), fg.transpose(0, 1).reshape(c, -1)
    losses = _lovasz_rows(err_rows, fg_rows).reshape(sets, c)
    if classes == "all":
        has_valid = valid.reshape(sets, -1).any(1, keepdim=True).to(p.dtype)
        per_set = (losses * has_valid).sum(1) / c
    else:
        present = (fg_rows.sum(1) > 0).reshape(sets, c).to(p.dtype)
        per_set = (losses * present).sum(1) / present.sum(1).clamp_min(1)
    return per_set.mean()


def lovasz_hinge_loss(
    logits: torch.Tensor, target: torch.Tensor, per_image: bool = True, ignore_index: int = 255
) -> torch.Tensor:
    """Binary Lovász hinge loss (Berman et al. 2018): ``relu`` of the sorted errors ``1 - x (2t - 1)`` times the
    Lovász gradient; per image then averaged (``per_image=True``, as the paper) or one set for the batch.

    An image whose pixels are all ignored contributes 0 and is counted.

    Returns:
        Scalar tensor.
    """
    _check_mode("binary")
    tgt = check_binary_inputs(logits, target, ignore_index)
    n = logits.shape[0]
    valid = tgt != ignore_index
    fg = (tgt == 1).to(logits.dtype)
    errors = 1 - logits[:, 0] * (2 * fg - 1)
    rows = n if per_image else 1
    # Ignored pixels get error -inf: sorted last, relu sends them (and their gradient) to 0.
    errors = errors.masked_fill(~valid, float("-inf")).reshape(rows, -1)
    err, order = errors.sort(dim=1, descending=True)
    gt = fg.reshape(rows, -1).gather(1, order)
    gts = gt.sum(1, keepdim=True)
    jaccard = 1 - (gts - gt.cumsum(1)) / (gts + (1 - gt).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (F.relu(err) * grad).sum(1).mean()
