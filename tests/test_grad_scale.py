import math

import pytest
import torch

from mmdet3d_skd.models.grad_scale import scale_grad


def test_forward_is_identity():
    x = torch.tensor([[1.0, -2.0], [3.5, 0.0]], requires_grad=True)
    for k in (0.5, 0.0, 2.0, -1.0):
        y = scale_grad(x, k)
        assert torch.equal(y, x) and y.grad_fn is not None
        assert y.shape == x.shape and y.dtype == x.dtype


def test_k_one_is_a_noop():
    x = torch.randn(3, requires_grad=True)
    assert scale_grad(x, 1.0) is x
    assert scale_grad(x, 1) is x


@pytest.mark.parametrize('k', [0.5, 0.0, 2.0])
def test_backward_scales_gradient(k):
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 4.0, -1.0])
    (scale_grad(x, k) * w).sum().backward()
    # without scaling dL/dx = w
    assert torch.allclose(x.grad, k * w)


def test_composes_with_graph():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    a = 3 * x
    b = scale_grad(a, 0.5)
    (b ** 2).sum().backward()
    # L = sum((3x)^2): dL/da = 2a = 6x, scaled by 0.5 -> 3x, times da/dx = 3 -> 9x
    assert torch.allclose(x.grad, 9 * x.detach())


def test_targeted_branch_keeps_full_gradient():
    """Parameters after the identity get their full gradient, the shared input a scaled one."""
    shared = torch.tensor([2.0, -1.0], requires_grad=True)
    w_t = torch.tensor([3.0, 5.0], requires_grad=True)
    w_s = torch.tensor([1.0, 1.0], requires_grad=True)
    loss = (w_t * scale_grad(shared, 0.25)).sum() + (w_s * scale_grad(shared, 2.0)).sum()
    loss.backward()
    assert torch.allclose(w_t.grad, shared.detach())
    assert torch.allclose(w_s.grad, shared.detach())
    assert torch.allclose(shared.grad, 0.25 * w_t.detach() + 2.0 * w_s.detach())


def test_works_under_no_grad():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with torch.no_grad():
        y = scale_grad(x, 0.5)
        z = scale_grad(x * 2, 0.5)
    assert torch.equal(y, x)
    assert y.grad_fn is None and z.grad_fn is None and not z.requires_grad
    assert torch.equal(z, 2 * x.detach())


def test_input_without_grad_passes_through():
    x = torch.tensor([1.0, 2.0])
    y = scale_grad(x, 0.5)
    assert torch.equal(y, x) and not y.requires_grad


def test_rejects_non_finite_k():
    x = torch.ones(2)
    with pytest.raises(ValueError, match='finite'):
        scale_grad(x, math.nan)
    with pytest.raises(ValueError, match='finite'):
        scale_grad(x, math.inf)


def test_accepts_scalar_tensor_k():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    scale_grad(x, torch.tensor(0.5)).sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), 0.5))
