"""Gated-SCNN: the dual-task loss against naive references, and the Trainer using it with no user code."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segkit.engine import Trainer
from segkit.losses import build_loss
from segkit.losses.gated_scnn import GatedSCNNLoss, boundary_target, gated_scnn_loss
from segkit.models import build_model


def _naive_boundary(t: torch.Tensor, ignore: int, r: int) -> torch.Tensor:
    n, h, w = t.shape
    out = torch.zeros_like(t, dtype=torch.bool)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                if t[b, y, x] == ignore:
                    continue
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and t[b, yy, xx] != ignore and t[b, yy, xx] != t[b, y, x]:
                            out[b, y, x] = True
    return out


def test_boundary_target_matches_naive_loop() -> None:
    t = torch.randint(0, 3, (2, 7, 9))
    t[0, 2:4, 3:6] = 255
    for r in (1, 2):
        assert torch.equal(boundary_target(t, 255, r), _naive_boundary(t, 255, r))


def test_loss_matches_independent_formula() -> None:
    seg = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    edge = torch.randn(2, 1, 6, 5, dtype=torch.float64)
    t = torch.randint(0, 3, (2, 6, 5))
    t[1, 0, :] = 255
    terms = gated_scnn_loss(seg, edge, t, edge_weight=20.0)
    valid = t != 255
    ref_seg = F.cross_entropy(seg, t, ignore_index=255)
    b = _naive_boundary(t, 255, 1)
    pos, neg, total = int(b.sum()), int((valid & ~b).sum()), int(valid.sum())
    ref_edge = 0.0
    for idx in valid.nonzero().tolist():
        z, y = float(edge[idx[0], 0, idx[1], idx[2]]), float(b[tuple(idx)])
        bce = -(y * torch.log(torch.sigmoid(torch.tensor(z))) + (1 - y) * torch.log(1 - torch.sigmoid(torch.tensor(z))))
        ref_edge += (neg / total if y else pos / total) * float(bce)
    ref_edge = 20.0 * ref_edge / total
    torch.testing.assert_close(terms["seg"], ref_seg)
    assert abs(float(terms["edge"]) - ref_edge) < 1e-9
    module = GatedSCNNLoss()
    torch.testing.assert_close(module((seg, edge), t), terms["seg"] + terms["edge"])


def test_all_ignored_gives_zero_and_zero_grad() -> None:
    seg = torch.randn(1, 3, 4, 4, requires_grad=True)
    edge = torch.randn(1, 1, 4, 4, requires_grad=True)
    loss = GatedSCNNLoss()((seg, edge), torch.full((1, 4, 4), 255))
    loss.backward()
    assert float(loss) == 0.0 and seg.grad is not None and edge.grad is not None
    assert float(seg.grad.abs().sum()) == 0.0 and float(edge.grad.abs().sum()) == 0.0


def test_gradcheck_and_seg_only() -> None:
    seg = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    edge = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 3, (1, 4, 4))
    assert torch.autograd.gradcheck(lambda s, e: GatedSCNNLoss()((s, e), t), (seg, edge))
    # Eval-mode outputs (seg logits alone): only the segmentation term.
    torch.testing.assert_close(GatedSCNNLoss()(seg, t), F.cross_entropy(seg, t))


def test_trainer_uses_default_loss_and_reports_both_terms(tiny_shapes, tmp_path) -> None:
    data = tiny_shapes("train", 2, 32)
    model = build_model(
        "gated_scnn", num_classes=data.num_classes, encoder="resnet18", aspp_channels=8, output_stride=32
    )
    assert build_loss(model.default_loss).__class__ is GatedSCNNLoss
    trainer = Trainer(model, train_data=data, epochs=1, batch_size=2, device="cpu",
                      out_dir=tmp_path, log_every=1, scheduler=None)  # fmt: skip
    assert isinstance(trainer.loss_fn, GatedSCNNLoss)
    from segkit.datasets import collate_semantic

    batch = collate_semantic([data[0], data[1]])
    model.train()
    out = trainer.training_step(batch)
    assert set(out) == {"loss", "loss/seg", "loss/edge"} and float(out["loss/edge"]) > 0
    out["loss"].backward()
    assert model.model.encoder.conv1.weight.grad is not None  # both terms train the whole network
