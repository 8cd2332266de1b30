"""Lovász losses (Berman et al. 2018) as pure functions, vectorised: one sort per class for all pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segkit.losses.functional import _check_mode, check_binary_inputs, check_multiclass_inputs

__all__ = ["lovasz_hinge_loss", "lovasz_softmax_loss"]


def _lovasz_rows(errors: torch.Tensor, fg: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Lovász extension of the Jaccard loss for each row of ``errors``, ignoring invalid entries.

    Args:
        errors: ``(R, P)`` float, differentiable.
        fg: ``(R, P)`` float in {0, 1}, the ground truth of each row.
        valid: ``(R, P)`` bool; invalid entries are sorted after every valid one and contribute nothing, so the
            Jaccard prefixes of the valid entries are those of the valid set alone.

    Returns:
        ``(R,)`` the loss ``<sorted errors, Lovász gradient>`` of each row (0 for a row without foreground or
        without valid entries, as the gradient is then 0 everywhere).
    """
    key = errors.detach().masked_fill(~valid, float("-inf"))
    order = key.argsort(dim=1, descending=True)
    err = errors.gather(1, order).masked_fill(~valid.gather(1, order), 0)
    gt = fg.gather(1, order) * valid.gather(1, order)
    gts = gt.sum(1, keepdim=True)
    intersection = gts - gt.cumsum(1)
    union = gts + (1 - gt).cumsum(1)
    jaccard = 1 - intersection / union
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (err * grad.detach()).sum(1)


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
    fg = F.one_hot(target.masked_fill(~valid, 0), c).permute(0, 3, 1, 2).to(p.dtype)
    if per_image:
        sets = n
        p_rows, fg_rows = p.reshape(n * c, -1), fg.reshape(n * c, -1)
        valid_rows = valid.reshape(n, 1, -1).expand(n, c, -1).reshape(n * c, -1)
    else:
        sets = 1
        p_rows, fg_rows = p.transpose(0, 1).reshape(c, -1), fg.transpose(0, 1).reshape(c, -1)
        valid_rows = valid.reshape(1, -1).expand(c, -1)
    losses = _lovasz_rows((fg_rows - p_rows).abs(), fg_rows, valid_rows).reshape(sets, c)
    if classes == "all":
        weight = valid_rows.any(1).reshape(sets, c).to(p.dtype)
        per_set = (losses * weight).sum(1) / c
    else:
        present = ((fg_rows * valid_rows).sum(1) > 0).reshape(sets, c).to(p.dtype)
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
    # relu after the sort: sorting the raw errors gives the same order, and relu keeps the gradient exact.
    key_errors, fg_r, valid_r = errors.reshape(rows, -1), fg.reshape(rows, -1), valid.reshape(rows, -1)
    key = key_errors.detach().masked_fill(~valid_r, float("-inf"))
    order = key.argsort(dim=1, descending=True)
    err = F.relu(key_errors.gather(1, order)).masked_fill(~valid_r.gather(1, order), 0)
    gt = fg_r.gather(1, order) * valid_r.gather(1, order)
    gts = gt.sum(1, keepdim=True)
    jaccard = 1 - (gts - gt.cumsum(1)) / (gts + (1 - gt).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (err * grad).sum(1).mean()
