"""A learn2learn-shaped MAML for any ``nn.Module``, on ``torch.func``: fast weights as a dict.

Model-Agnostic Meta-Learning (Finn, Abbeel & Levine 2017, Algorithm 2 for supervised learning)
learns an initialisation ``theta`` from which a few gradient steps on a task's support set fit
that task: ``theta' = theta - alpha * grad L_support(theta)``, and the outer loop minimises the
query loss at ``theta'`` over tasks. Meta-SGD (Li et al. 2017, "Meta-SGD: Learning to Learn
Quickly for Few-Shot Learning") learns ``alpha`` too, one rate per parameter element.

This module keeps learn2learn's user-facing API (``learn2learn.algorithms.MAML``) and runs
the adapted model functionally: a :class:`Learner` holds a ``{name: tensor}`` dict of fast
weights and calls the unchanged module with ``torch.func.functional_call``. Nothing is
patched, copied or monkeypatched; the first fast weights *are* the module's parameters, so
the outer ``loss.backward()`` reaches them (and a :class:`MetaSGD`'s rates) through the inner
steps. The learn2learn loop, unchanged but for the import::

    from metaxm.meta import MAML

    maml = MAML(model, lr=0.01)                  # first_order=True for FOMAML
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
    for x_s, y_s, x_q, y_q in tasks:             # one meta-batch
        learner = maml.clone()                   # fast weights = the model's parameters
        learner.adapt(F.mse_loss(learner(x_s), y_s))   # theta' = theta - lr * grad
        (F.mse_loss(learner(x_q), y_q) / len(tasks)).backward()
    opt.step()
    opt.zero_grad()

What differs from learn2learn:

- ``clone()`` copies no module: it returns a :class:`Learner` (not another ``MAML``) whose
  fast weights start as the model's own parameter tensors. ``learner.module`` does not exist;
  the learner can only run the module's ``forward`` (``learner(*args, **kwargs)``).
- Buffers (BatchNorm running statistics) are the module's own, shared by every learner and
  updated in place as the module would update them; learn2learn clones them per learner.
- Frozen parameters (``requires_grad=False``) are never adapted. As in learn2learn, adapting
  a model that has some raises unless ``allow_nograd=True`` (a ``ValueError`` naming the
  first one here, a traceback and a printed hint there); with it, they stay fixed.
- A parameter the support loss does not reach raises a one-line ``ValueError`` naming it,
  unless ``allow_unused=True`` (then it stays as it is), where learn2learn prints and goes on.
- The model's ``train()``/``eval()`` mode is the learners' mode.

:func:`sgd_step` is the one update rule: the RL MAML's inner step (:mod:`metaxm.meta.maml`)
shares it, so it is pure and safe inside ``torch.func.vmap`` and ``torch.func.grad``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]


def sgd_step(
    params: dict[str, Tensor],
    grads: dict[str, Tensor],
    lrs: Mapping[str, Tensor | float],
    first_order: bool,
) -> dict[str, Tensor]:
    """One step of gradient descent on a parameter dict: ``p - lrs[k] * g`` for every ``k``.

    Pure (no in-place ops, no ``.item()``, no branching on tensor values), so it runs inside
    ``torch.func.vmap`` and ``torch.func.grad``. The operand order is fixed, ``p - lr * g``,
    so that every caller gets bitwise the same result.

    Args:
        params: the current parameters ``{name: tensor}``.
        grads: the gradients of the inner loss; a name of ``params`` without one here keeps its
            tensor (unused or frozen parameters).
        lrs: the learning rate of each name in ``grads``: a float, or a tensor broadcastable to
            the parameter (Meta-SGD's per-element rates, differentiable).
        first_order: treat the gradients as constants (FOMAML): no second-order terms reach
            ``params``; the rates still get their gradient.

    Returns:
        the new parameters, a new dict with the keys of ``params``.
    """
    new = dict(params)
    for k, g in grads.items():
        new[k] = params[k] - lrs[k] * (g.detach() if first_order else g)
    return new


class Learner:
    """One task's adapted model: the module plus a dict of fast weights.

    Made by :meth:`MAML.clone`; :meth:`adapt` replaces the fast weights by a differentiable
    SGD step, calling the learner runs the module with them.

    Attributes:
        params: the fast weights ``{name: tensor}``, every parameter of the module (frozen ones
            included, as they are).
    """

    def __init__(
        self,
        model: nn.Module,
        params: Params,
        lrs: Mapping[str, Tensor | float],
        first_order: bool,
        allow_unused: bool,
        allow_nograd: bool,
    ) -> None:
        self.model = model
        self.params = params
        self.lrs = lrs
        self.first_order = first_order
        self.allow_unused = allow_unused
        self.allow_nograd = allow_nograd

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The module's ``forward`` with the fast weights (buffers: the module's own)."""
        return functional_call(self.model, self.params, args, kwargs)

    def adapt(
        self,
        loss: Tensor,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> None:
        """Take one inner step on ``loss``: ``params <- params - lr * grad loss``.

        Args:
            loss: a scalar computed with this learner's fast weights.
            first_order: detach the gradient (FOMAML); default: the learner's setting.
            allow_unused: let parameters ``loss`` does not reach stay as they are instead of
                raising; default: the learner's setting.
            allow_nograd: let frozen parameters stay as they are instead of raising; default:
                the learner's setting.

        Raises:
            ValueError: a parameter is frozen (without ``allow_nograd``), ``loss`` does not
                reach a parameter (without ``allow_unused``), or ``loss`` reaches none.
        """
        first_order = self.first_order if first_order is None else first_order
        allow_unused = self.allow_unused if allow_unused is None else allow_unused
        allow_nograd = self.allow_nograd if allow_nograd is None else allow_nograd
        names = [k for k, p in self.params.items() if p.requires_grad]
        frozen = [k for k in self.params if k not in names]
        if frozen and not allow_nograd:
            raise ValueError(
                f"parameter {frozen[0]!r} has requires_grad=False; pass allow_nograd=True "
                "to MAML(...), MetaSGD(...), clone(...) or adapt(...) to keep frozen parameters "
                "fixed"
            )
        if not loss.requires_grad:
            raise ValueError("the loss passed to adapt() depends on no trainable parameter")
        found = torch.autograd.grad(
            loss,
            [self.params[k] for k in names],
            retain_graph=not first_order,
            create_graph=not first_order,
            allow_unused=True,
        )
        grads = {k: g for k, g in zip(names, found) if g is not None}
        unused = [k for k in names if k not in grads]
        if unused and not allow_unused:
            raise ValueError(
                f"the loss passed to adapt() does not depend on parameter {unused[0]!r}; "
                "pass allow_unused=True to MAML(...) or adapt(...) to leave it unchanged"
            )
        self.params = sgd_step(self.params, grads, self.lrs, first_order)

    def clone(self) -> Learner:
        """A learner that starts from this one's fast weights (a branch of the graph)."""
        return Learner(
            self.model,
            dict(self.params),
            self.lrs,
            self.first_order,
            self.allow_unused,
            self.allow_nograd,
        )

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """``(name, fast weight)`` pairs, in the module's parameter order."""
        yield from self.params.items()

    def parameters(self) -> Iterator[Tensor]:
        """The fast weights, in the module's parameter order."""
        yield from self.params.values()


class MAML(nn.Module):
    """MAML (Finn et al. 2017) around any module, with learn2learn's API.

    Args:
        model: the module to meta-learn; available as ``.module``.
        lr: the inner learning rate ``alpha``.
        first_order: FOMAML: inner gradients are constants in the meta-gradient.
        allow_unused: parameters the support loss does not reach stay as they are (else
            :meth:`Learner.adapt` raises).
        allow_nograd: frozen parameters stay as they are (else :meth:`Learner.adapt` raises).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        first_order: bool = False,
        allow_unused: bool = False,
        allow_nograd: bool = False,
    ) -> None:
        super().__init__()
        self.module = model
        self.lr = lr
        self.first_order = first_order
        self.allow_unused = allow_unused
        self.allow_nograd = allow_nograd

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The model itself, unadapted."""
        return self.module(*args, **kwargs)

    def inner_lrs(self) -> dict[str, Tensor | float]:
        """``{name: inner learning rate}`` for every parameter of the model."""
        return {k: self.lr for k, _ in self.module.named_parameters()}

    def clone(
        self,
        first_order: bool | None = None,
        allow_unused: bool | None = None,
        allow_nograd: bool | None = None,
    ) -> Learner:
        """A :class:`Learner` whose fast weights are the model's parameters (not copies).

        The arguments override this wrapper's settings for the learner.
        """
        return Learner(
            self.module,
            dict(self.module.named_parameters()),
            self.inner_lrs(),
            self.first_order if first_order is None else first_order,
            self.allow_unused if allow_unused is None else allow_unused,
            self.allow_nograd if allow_nograd is None else allow_nograd,
        )


class MetaSGD(MAML):
    """Meta-SGD (Li et al. 2017): MAML with a learned inner rate per parameter element.

    The rates are ``self.lrs``, an ``nn.ParameterList`` in the model's parameter order (as in
    learn2learn), so ``MetaSGD(...).parameters()`` hands the outer optimiser both the model
    and the rates, and the outer ``backward()`` reaches both.

    Args:
        model: the module to meta-learn; available as ``.module``.
        lr: the initial value of every rate.
        first_order: FOMAML-style: inner gradients are constants (the rates still learn).
        lrs: initial rates, one tensor per parameter of ``model`` in its order, each of the
            parameter's shape or broadcastable to it (a scalar); default ``lr`` everywhere.
        allow_unused, allow_nograd: as for :class:`MAML`.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1.0,
        first_order: bool = False,
        lrs: list[Tensor] | None = None,
        allow_unused: bool = False,
        allow_nograd: bool = False,
    ) -> None:
        super().__init__(model, lr, first_order, allow_unused, allow_nograd)
        named = list(model.named_parameters())
        params = [p for _, p in named]
        if lrs is None:
            lrs = [torch.full_like(p, lr) for p in params]
        if len(lrs) != len(params):
            raise ValueError(
                f"MetaSGD got {len(lrs)} learning rates for {len(params)} parameters; "
                "pass one tensor per model parameter, in model.parameters() order"
            )
        for (name, p), rate in zip(named, lrs):
            shape = torch.as_tensor(rate).shape
            try:
                fits = torch.broadcast_shapes(shape, p.shape) == p.shape
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(
                    f"MetaSGD: the rate for {name!r} has shape {tuple(shape)}, which does not "
                    f"broadcast to the parameter's {tuple(p.shape)}"
                )
        self.lrs = nn.ParameterList([nn.Parameter(lr_.detach().clone()) for lr_ in lrs])

    def inner_lrs(self) -> dict[str, Tensor | float]:
        """``{name: learned rate tensor}`` for every parameter of the model."""
        names = [k for k, _ in self.module.named_parameters()]
        return dict(zip(names, self.lrs))
