"""The lecture's four update rules, written exactly as the lecture writes them.

Every running average starts at zero (V0 = S0 = 0) and is updated per mini-batch ``t``:

- ``sgd``:      W −= α · dW
- ``momentum``: V = βV + (1 − β)·dW;                 W −= α · V
- ``rmsprop``:  S = βS + (1 − β)·dW²;                W −= α · dW / √(S + ε)
- ``adam``:     V = β1·V + (1 − β1)·dW,  S = β2·S + (1 − β2)·dW²,
                V̂ = V / (1 − β1^t),  Ŝ = S / (1 − β2^t);  W −= α · V̂ / √(Ŝ + ε)

Where PyTorch's built-ins differ (so they are not used):

- ``torch.optim.SGD(momentum=β)`` keeps V = βV + dW (no 1 − β factor, so its step is
  1/(1 − β) times larger); with ``dampening=β`` it matches the lecture except on the
  first step, where it sets V = dW instead of (1 − β)·dW.
- ``torch.optim.RMSprop`` puts ε outside the root, dW / (√S + ε), and calls β ``alpha``
  (default 0.99, not 0.9).
- ``torch.optim.Adam`` also puts ε outside the root, V̂ / (√Ŝ + ε). The two agree when
  Ŝ ≫ ε², but differ for parameters with tiny gradients, where ε matters.
- Their ``weight_decay`` adds λ·W to the gradient; the lecture's L2 adds λ/m·W. hone
  adds the penalty to the cost instead (see ``trainer.regularization``).

The updates use PyTorch's ``_foreach`` kernels: one call updates every parameter of a
group, which matters for small networks, where launching kernels dominates the time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, overload

import torch
from torch import Tensor

from trainer.config import Optimizer as OptimizerName

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


class LectureOptimizer(torch.optim.Optimizer):
    """Shared plumbing: gathers each group's parameters that have a gradient."""

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params, [p.grad for p in params if p.grad is not None])
        return loss

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        raise NotImplementedError

    def _buffers(self, params: list[Tensor], name: str) -> list[Tensor]:
        """The running average ``name`` of each parameter, created as zeros (V0 = 0)."""
        buffers = []
        for p in params:
            state = self.state[p]
            if name not in state:
                state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
            buffers.append(state[name])
        return buffers


class SGD(LectureOptimizer):
    """Plain (mini-batch) gradient descent: W −= α · dW."""

    def __init__(self, params: Params, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        torch._foreach_add_(params, grads, alpha=-group["lr"])


class Momentum(LectureOptimizer):
    """Gradient descent with momentum: V = βV + (1 − β)·dW, W −= α · V."""

    def __init__(self, params: Params, lr: float, beta: float = 0.9) -> None:
        super().__init__(params, {"lr": lr, "beta": beta})

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        beta = group["beta"]
        v = self._buffers(params, "v")
        torch._foreach_mul_(v, beta)
        torch._foreach_add_(v, grads, alpha=1 - beta)
        torch._foreach_add_(params, v, alpha=-group["lr"])


class RMSprop(LectureOptimizer):
    """RMSprop: S = βS + (1 − β)·dW², W −= α · dW / √(S + ε)."""

    def __init__(self, params: Params, lr: float, beta: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "beta": beta, "eps": eps})

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        beta = group["beta"]
        s = self._buffers(params, "s")
        torch._foreach_mul_(s, beta)
        torch._foreach_addcmul_(s, grads, grads, value=1 - beta)
        root = torch._foreach_add(s, group["eps"])
        torch._foreach_sqrt_(root)
        torch._foreach_addcdiv_(params, grads, root, value=-group["lr"])


class Adam(LectureOptimizer):
    """Adam: momentum and RMSprop together, both bias-corrected, ε inside the root."""

    def __init__(
        self,
        params: Params,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps})

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        beta1, beta2 = group["beta1"], group["beta2"]
        # One step counter per group: every parameter of a group is updated together.
        t = group["t"] = group.get("t", 0) + 1
        v = self._buffers(params, "v")
        s = self._buffers(params, "s")
        torch._foreach_mul_(v, beta1)
        torch._foreach_add_(v, grads, alpha=1 - beta1)
        torch._foreach_mul_(s, beta2)
        torch._foreach_addcmul_(s, grads, grads, value=1 - beta2)
        root = torch._foreach_div(s, 1 - beta2**t)
        torch._foreach_add_(root, group["eps"])
        torch._foreach_sqrt_(root)
        torch._foreach_addcdiv_(params, v, root, value=-group["lr"] / (1 - beta1**t))


def make_optimizer(
    name: OptimizerName,
    params: Params,
    *,
    lr: float,
    beta: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> LectureOptimizer:
    """The optimizer called ``name`` in a config, with the knobs it uses."""
    if name == "sgd":
        return SGD(params, lr)
    if name == "momentum":
        return Momentum(params, lr, beta)
    if name == "rmsprop":
        return RMSprop(params, lr, beta, eps)
    if name == "adam":
        return Adam(params, lr, beta1, beta2, eps)
    raise ValueError(f"unknown optimizer {name!r}")
