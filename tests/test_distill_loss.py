import math

import pytest
import torch
import torch.nn.functional as F

from mmdet3d.registry import MODELS
from mmdet3d_skd.models.distill_loss import UncertaintyDistillLoss


def test_plain_smooth_l1_by_hand():
    loss = UncertaintyDistillLoss(uncertainty='none', penalty='smooth_l1', beta=1.0)
    pred = torch.tensor([[0.0], [3.0]])
    target = torch.tensor([[0.5], [1.0]])
    # e = [0.5, 2.0]; smooth-L1: [0.5 * 0.25, 2 - 0.5] = [0.125, 1.5]; mean 0.8125
    assert loss(pred, target).item() == pytest.approx(0.8125)


def test_margin_by_hand():
    pred = torch.tensor([[0.0], [3.0]], requires_grad=True)
    target = torch.tensor([[0.5], [1.0]])
    smooth = UncertaintyDistillLoss(uncertainty='none', margin=0.5)
    # e = max(0, [0.5, 2.0] - 0.5) = [0, 1.5] -> smooth-L1 [0, 1.0] -> mean 0.5
    out = smooth(pred, target)
    assert out.item() == pytest.approx(0.5)
    out.backward()
    # inside the margin: no gradient; outside: d/dp (e - 0.5) / M = 1 / 2
    assert pred.grad[0, 0].item() == 0.0
    assert pred.grad[1, 0].item() == pytest.approx(0.5)
    l1 = UncertaintyDistillLoss(uncertainty='none', margin=0.5, penalty='l1')
    assert l1(pred, target).item() == pytest.approx(0.75)


def test_none_mode_equals_plain_penalty_mean():
    torch.manual_seed(0)
    pred = torch.randn(7, 3) * 3
    target = torch.randn(7, 3)
    log_var = torch.randn(7)
    for beta in (0.5, 1.0, 2.0):
        loss = UncertaintyDistillLoss(uncertainty='none', beta=beta)
        expected = F.smooth_l1_loss(pred, target, beta=beta)
        # log_var is ignored in 'none' mode
        assert torch.allclose(loss(pred, target, log_var), expected)
    l1 = UncertaintyDistillLoss(uncertainty='none', penalty='l1')
    assert torch.allclose(l1(pred, target), F.l1_loss(pred, target))


def test_teacher_confidence_weights_by_hand():
    loss = UncertaintyDistillLoss(penalty='l1')
    pred = torch.tensor([[1.0], [1.0]], requires_grad=True)
    target = torch.zeros(2, 1)
    log_var = torch.tensor([0.0, math.log(3.0)])
    # exp(-s) = [1, 1/3], mean 2/3 -> w = [1.5, 0.5]; l1 = [1, 1]; mean = (1.5 + 0.5) / 2 = 1
    out = loss(pred, target, log_var)
    assert out.item() == pytest.approx(1.0)
    out.backward()
    # the confident teacher sample gets three times the gradient share
    assert torch.allclose(pred.grad, torch.tensor([[0.75], [0.25]]))
    per_elem = loss(pred, target, log_var, reduction_override='none')
    assert torch.allclose(per_elem, torch.tensor([[1.5], [0.5]]))


def test_confidence_weights_average_to_one_and_order():
    loss = UncertaintyDistillLoss()
    log_var = torch.tensor([-2.0, 0.0, 1.0, 3.0])
    w = loss.confidence_weights(log_var, torch.Size([4, 1]))
    assert w.mean().item() == pytest.approx(1.0)
    assert torch.all(w[:-1, 0] > w[1:, 0])  # more uncertain -> smaller weight


def test_weight_masks_and_normalises_with_mask():
    loss = UncertaintyDistillLoss(penalty='l1', reduction='sum')
    pred = torch.ones(3, 1)
    target = torch.zeros(3, 1)
    log_var = torch.tensor([0.0, -5.0, math.log(3.0)])
    weight = torch.tensor([1.0, 0.0, 1.0])
    # the masked sample (weight 0) does not enter the normalisation: w = [1.5, ., 0.5]
    assert loss(pred, target, log_var, weight).item() == pytest.approx(2.0)
    w = loss.confidence_weights(log_var, torch.Size([3, 1]), weight[:, None])
    assert (w[:, 0] * weight).sum().item() == pytest.approx(weight.sum().item())
    # plain weighting in 'none' mode: a Gaussian-mask-weighted sum
    plain = UncertaintyDistillLoss(penalty='l1', reduction='sum', uncertainty='none')
    assert plain(pred, target, weight=torch.tensor([0.5, 0.25, 1.0])).item() == \
        pytest.approx(1.75)


def test_per_column_log_var():
    loss = UncertaintyDistillLoss(penalty='l1', reduction='none')
    pred = torch.ones(2, 2)
    target = torch.zeros(2, 2)
    log_var = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    out = loss(pred, target, log_var)
    assert torch.allclose(out, torch.tensor([[1.5, 0.5], [0.5, 1.5]]))


def test_teacher_gets_no_gradient():
    loss = UncertaintyDistillLoss()
    pred = torch.randn(4, 2, requires_grad=True)
    target = torch.randn(4, 2, requires_grad=True)
    log_var = torch.randn(4, requires_grad=True)
    loss(pred, target, log_var).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
    assert log_var.grad is None


def test_reductions_and_avg_factor():
    loss = UncertaintyDistillLoss(penalty='l1', loss_weight=2.0)
    pred = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    target = torch.zeros(2, 2)
    log_var = torch.zeros(2)  # equal confidence -> w = 1
    # l1 = [[1, 2], [0, 1]]: sum 4, mean 1; loss_weight 2
    assert loss(pred, target, log_var).item() == pytest.approx(2.0)
    assert loss(pred, target, log_var, reduction_override='sum').item() == pytest.approx(8.0)
    assert loss(pred, target, log_var, avg_factor=8.0).item() == pytest.approx(1.0)
    none = loss(pred, target, log_var, reduction_override='none')
    assert torch.allclose(none, 2 * torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    vec = loss(pred[:, 0], target[:, 0], log_var, reduction_override='none')
    assert vec.shape == (2,)
    assert torch.allclose(vec, torch.tensor([2.0, 0.0]))


def test_empty_input_is_zero_and_differentiable():
    loss = UncertaintyDistillLoss()
    pred = torch.zeros(0, 3, requires_grad=True)
    out = loss(pred, torch.zeros(0, 3), torch.zeros(0))
    assert out.shape == () and out.item() == 0.0
    out.backward()
    assert loss(pred, torch.zeros(0, 3), torch.zeros(0),
                reduction_override='none').shape == (0, 3)


def test_extreme_log_var_is_finite():
    loss = UncertaintyDistillLoss()
    pred = torch.randn(3, 1, requires_grad=True)
    out = loss(pred, torch.zeros(3, 1), torch.tensor([1e4, -1e4, 0.0]))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(pred.grad).all()
    # all samples masked out: zero, not NaN
    out = loss(pred, torch.zeros(3, 1), torch.zeros(3), weight=torch.zeros(3))
    assert out.item() == 0.0


def test_errors_are_explicit():
    with pytest.raises(ValueError, match='penalty'):
        UncertaintyDistillLoss(penalty='l2')
    with pytest.raises(ValueError, match='uncertainty'):
        UncertaintyDistillLoss(uncertainty='student')
    loss = UncertaintyDistillLoss()
    with pytest.raises(ValueError, match='log_var'):
        loss(torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match='same shape'):
        loss(torch.zeros(2, 1), torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match='log_var'):
        loss(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(3))


def test_build_from_registry():
    loss = MODELS.build(dict(type='UncertaintyDistillLoss', loss_weight=0.5, margin=0.1,
                             penalty='l1', uncertainty='none'))
    assert isinstance(loss, UncertaintyDistillLoss)
    # |1 - 0| - 0.1 = 0.9, times 0.5
    assert loss(torch.ones(1, 1), torch.zeros(1, 1)).item() == pytest.approx(0.45)
