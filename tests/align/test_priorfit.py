"""The closed-form meta-learned paired fit (``algo: priorfit``): the MAP map and its
meta-gradient against an independent solve in the weights' own space and against ``higher``
unrolled to convergence (float64); the trainer's exact resume and what it refuses; the learner
on what it cannot read."""

from __future__ import annotations

import copy

import gymnasium as gym
import pytest
import torch

from metaxm.align.priorfit import MapPrior, map_solve, prior_solve, units
from metaxm.errors import ConfigError
from metaxm.nn.agent import build_agent


def _primal(x, y, mean, log_prec):
    """Per source channel j: (X'X + diag(p_j)) w_j = X'y_j + p_j * m_j, a D x D solve."""
    cols = []
    for j in range(y.shape[1]):
        p = log_prec[:, j].exp()
        cols.append(torch.linalg.solve(x.T @ x + torch.diag(p), x.T @ y[:, j] + p * mean[:, j]))
    return torch.stack(cols, 1)


def _problem(n: int, d: int, s: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, s, generator=g, dtype=torch.float64)
    mean = torch.randn(d, s, generator=g, dtype=torch.float64).requires_grad_()
    log_prec = torch.randn(d, s, generator=g, dtype=torch.float64).requires_grad_()
    return x, y, mean, log_prec


def test_the_dual_solve_is_the_map_estimate_and_its_meta_gradient() -> None:
    for n, d in ((5, 9), (12, 4)):  # fewer rows than weights (pixels), and more
        x, y, mean, log_prec = _problem(n, d)
        xq = torch.randn(7, d, dtype=torch.float64)
        ours, ref = map_solve(x, y, mean, log_prec), _primal(x, y, mean, log_prec)
        assert torch.allclose(ours, ref, atol=1e-10)
        grads = [torch.autograd.grad((xq @ w).pow(2).mean(), [mean, log_prec]) for w in (ours, ref)]
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-10)
            assert float(a.abs().max()) > 1e-6  # the prior learns


def test_the_prior_in_rms_units_is_the_map_estimate_of_the_rescaled_prior() -> None:
    """``prior_solve``: the prior on w_i * r_i (r_i: feature i's RMS over the pairs) is, in the
    map's own units, precision p_i * r_i^2 around m_i / r_i; a feature at 0 keeps its units."""
    x, y, mean, log_prec = _problem(12, 4, seed=2)
    x = x * torch.tensor([100.0, 0.05, 1.0, 3.0], dtype=torch.float64)  # scales far apart
    x[:, 2] = 0.0  # a channel the pairs never move
    r = units(x)
    assert r[2] == 1.0 and torch.allclose(r[:2], x[:, :2].pow(2).mean(0).sqrt())
    ref = _primal(x, y, mean / r[:, None], log_prec + 2 * r.log()[:, None])
    assert torch.allclose(prior_solve(x, y, mean, log_prec), ref, atol=1e-10)


def test_the_prior_spans_least_squares_and_its_own_mean() -> None:
    x, y, mean, _ = _problem(12, 4)
    flat = torch.full_like(mean, -20.0)
    assert torch.allclose(map_solve(x, y, mean, flat), torch.linalg.lstsq(x, y).solution)
    firm = torch.full_like(mean, 20.0)
    assert torch.allclose(map_solve(x, y, mean, firm), mean, atol=1e-6)


def test_a_weak_prior_on_an_images_features_solves_in_float32() -> None:
    """An image's 2,352 features, each in its RMS units, near least squares (log precision
    -9), in float32, every image seen twice (as a walk's pairs on GridNav pixels, where this was
    found): the dual system's entries pass 1e7 and its identity is lost below float32's
    precision, so a float32 solve finds it singular; the solve is float64 inside."""
    g = torch.Generator().manual_seed(0)
    x = (1.0 + 0.3 * torch.randn(15, 2352, generator=g)).repeat(2, 1)
    x = x / units(x)
    y = torch.randn(15, 8, generator=g).repeat(2, 1)
    mean, log_prec = torch.zeros(2352, 8), torch.full((2352, 8), -9.0)
    with pytest.raises(RuntimeError, match="singular"):  # the same solve in float32
        gram = torch.einsum("nd,sd,md->snm", x, (-log_prec).exp().T, x)
        torch.linalg.solve(gram + torch.eye(30), y.T.unsqueeze(-1))
    w = map_solve(x, y, mean, log_prec)
    assert w.dtype == torch.float32 and bool(torch.isfinite(w).all())
    assert float((x @ w - y).abs().max()) < 1e-2  # N < D: it interpolates the pairs


def test_the_meta_gradient_matches_higher_unrolled_to_convergence() -> None:
    """``higher``'s differentiable SGD on the same proximal objective, unrolled until it has
    converged, gives the closed form's meta-gradient (the implicit gradient, iMAML)."""
    higher = pytest.importorskip("higher")
    x, y, mean, log_prec = _problem(12, 4, seed=1)
    log_prec = (log_prec.detach() * 0.3).requires_grad_()  # precisions near 1: well conditioned
    xq = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ours = torch.autograd.grad(
        (xq @ map_solve(x, y, mean, log_prec)).pow(2).mean(), [mean, log_prec]
    )
    model = torch.nn.Linear(4, 3, bias=False).double()
    lr = 1.0 / (
        2 * float(torch.linalg.eigvalsh(x.T @ x).max()) + 2 * float(log_prec.detach().exp().max())
    )
    with higher.innerloop_ctx(model, torch.optim.SGD(model.parameters(), lr=lr)) as (f, opt):
        for _ in range(3000):
            w = f.weight.T
            opt.step((x @ w - y).pow(2).sum() + (log_prec.exp() * (w - mean).pow(2)).sum())
        ref = torch.autograd.grad((xq @ f.weight.T).pow(2).mean(), [mean, log_prec])
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-7), (a - b).abs().max()


def test_a_prior_round_trips_and_refuses_a_family_it_lacks() -> None:
    prior = MapPrior({"vector": torch.randn(4, 3)}, {"vector": torch.randn(4, 3)})
    again = MapPrior.from_state(prior.state_dict())
    assert torch.equal(again.mean["vector"], prior.mean["vector"])
    assert torch.equal(again.log_prec["vector"], prior.log_prec["vector"])
    with pytest.raises(KeyError, match="no meta-learned prior for family 'pixels'"):
        prior.solve("pixels", torch.zeros(2, 4), torch.zeros(2, 3))


def test_the_prior_for_any_family_is_its_precision_per_channel_times_the_features() -> None:
    """A family with no prior of its own is solved under mean 0 and, per source channel j,
    precision exp(unseen_j) * D on every feature in its RMS units; the prior round-trips, and
    one saved before it was learned has none (and refuses such a family)."""
    x, y, _, _ = _problem(12, 5, s=2, seed=3)
    unseen = torch.tensor([0.5, -1.0], dtype=torch.float64)
    prior = MapPrior({"vector": torch.zeros(3, 2)}, {"vector": torch.zeros(3, 2)}, set(), unseen)
    r = units(x)
    log_prec = (unseen + torch.tensor(5.0).log()).expand(5, 2) + 2 * r.log()[:, None]
    ref = _primal(x, y, torch.zeros(5, 2, dtype=torch.float64), log_prec)
    assert torch.allclose(prior.solve("audio", x, y), ref, atol=1e-10)
    assert torch.equal(MapPrior.from_state(prior.state_dict()).unseen, unseen)
    old = {k: v for k, v in prior.state_dict().items() if k != "unseen"}
    assert MapPrior.from_state(old).unseen is None
    with pytest.raises(KeyError, match="no meta-learned prior for family 'audio'"):
        MapPrior.from_state(old).solve("audio", x, y)


def test_the_meta_gradient_of_the_prior_for_any_family_matches_higher() -> None:
    """The unseen prior's meta-gradient (one log precision per source channel, through the
    exact solve in RMS units) against ``higher``'s SGD on the same objective unrolled to
    convergence (float64)."""
    higher = pytest.importorskip("higher")
    x, y, _, _ = _problem(12, 4, seed=4)
    unseen = torch.tensor([0.2, -0.3, 0.1], dtype=torch.float64, requires_grad=True)
    xq = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    prior = MapPrior({}, {}, set(), unseen)
    ours = torch.autograd.grad((xq @ prior.solve("audio", x, y)).pow(2).mean(), [unseen])[0]
    r = units(x)
    xr = x / r  # the solve's features, in their RMS units
    prec = (unseen + float(torch.tensor(4.0).log())).exp()  # (S,): the same on every feature
    model = torch.nn.Linear(4, 3, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    lr = 1.0 / (2 * float(torch.linalg.eigvalsh(xr.T @ xr).max()) + 2 * float(prec.detach().max()))
    with higher.innerloop_ctx(model, torch.optim.SGD(model.parameters(), lr=lr)) as (f, opt):
        for _ in range(3000):
            w = f.weight.T
            opt.step((xr @ w - y).pow(2).sum() + (prec * w.pow(2)).sum())
        ref = torch.autograd.grad((xq @ (f.weight.T / r[:, None])).pow(2).mean(), [unseen])[0]
    assert float(ours.abs().max()) > 1e-6  # it learns
    assert torch.allclose(ours, ref, atol=1e-7), (ours - ref).abs().max()


def test_a_prior_keeps_which_families_it_reads_unsquashed() -> None:
    """A prior saved before ``unsquashed`` was kept (no such table) reads every family as it
    is; a map saved before it (no such buffer) loads reading its inputs as they are."""
    from metaxm.align.priorfit import LinearTranslator

    prior = MapPrior(
        {"projected": torch.randn(4, 3)}, {"projected": torch.randn(4, 3)}, {"projected"}
    )
    assert MapPrior.from_state(prior.state_dict()).unsquashed == {"projected"}
    old = {k: v for k, v in prior.state_dict().items() if k != "unsquashed"}
    assert MapPrior.from_state(old).unsquashed == set()
    space = gym.spaces.Box(-1.0, 1.0, (4,))
    saved = LinearTranslator(torch.randn(4, 3), space).state_dict()
    del saved["unsquashed"]
    blank = LinearTranslator(torch.zeros(4, 3), space, unsquashed=True)
    blank.load_state_dict(saved)
    assert not bool(blank.unsquashed) and torch.equal(blank.weight, saved["weight"])


def test_a_squashed_familys_map_is_linear_in_its_unsquashed_sensors(pairs) -> None:
    """``projected`` sensors are ``tanh`` of a linear mix of the state: from 40 paired states of
    a variant, least squares (a weak prior) on the unsquashed sensors translates 400 others to
    the source's state channels with a fraction of the error it makes on the squashed
    ones (under 0.3 of it), on each of four variants."""
    from metaxm.align.priorfit import SQUASHED, features

    assert "projected" in SQUASHED
    space = gym.spaces.Box(-1.0, 1.0, (32,))
    g = torch.Generator().manual_seed(0)
    cells = [torch.randint(0, 7, (440, 2), generator=g) for _ in range(2)]
    for variant in range(4):
        target, source = pairs(("projected", variant), *cells, variant)
        y = source.double()[:, :4]  # the state channels (the source's noise: not mapped)
        errors = []
        for unsquashed in (False, True):
            x = features(target, space, unsquashed).double()
            weak = torch.full((32, 4), -12.0, dtype=torch.float64)
            w = prior_solve(x[:40], y[:40], torch.zeros_like(weak), weak)
            errors.append(float((x[40:] @ w - y[40:]).pow(2).mean() / y[40:].pow(2).mean()))
        assert errors[1] < 0.3 * errors[0], (variant, errors)


def test_the_learner_solves_and_reads_a_squashed_family_alike(make_spec) -> None:
    """``projected`` under a prior that reads it unsquashed: the learner solves the map on the
    unsquashed sensors and its translator reads them so (not the squashed ones, whose solve
    differs)."""
    from types import SimpleNamespace

    from metaxm.align.fewshot import collect_paired_steps, default_source
    from metaxm.align.priorfit import features
    from metaxm.learners import PriorFit

    spec = make_spec(modalities={"train": {"vector": 2, "projected": 2}, "heldout_variants": {}})
    agent = build_agent(spec)
    space = agent.observation_spaces["projected"]
    d, s = int(space.shape[0]), int(agent.observation_spaces["vector"].shape[0])
    prior = MapPrior(
        {"projected": torch.zeros(d, s)}, {"projected": torch.zeros(d, s)}, {"projected"}
    )
    pairs = collect_paired_steps(
        agent, spec, ("projected", 5), source=default_source(spec), seed=0, episodes=2
    ).batch
    policy = SimpleNamespace()
    PriorFit(agent, spec, prior).fit_into(policy, pairs, seed=0)
    y = pairs.obs[1].float().flatten(1)
    unsquashed = features(pairs.obs[0], space, True)
    expected = prior.solve("projected", unsquashed, y)
    assert torch.equal(policy.translator.weight, expected)
    squashed = prior.solve("projected", features(pairs.obs[0], space), y)
    assert not torch.allclose(expected, squashed, atol=1e-3)
    torch.testing.assert_close(policy.translator(pairs.obs[0]), unsquashed @ expected)


def _trainer_spec(make_spec, source_run, tmp_path, train, **align):
    spec = make_spec(
        modalities={"train": train, "heldout_variants": {}},
        agent={"adapters": "variant"},
        align={"meta_batch": 1, "meta_episodes": [1, 2], "meta_query_episodes": 2, **align},
        train={"init_from": str(tmp_path)},
        algo="priorfit",
    )
    source_run(spec, tmp_path)
    return spec


def test_the_trainer_learns_a_prior_per_vector_family_and_resumes_exactly(
    make_spec, source_run, resumes, tmp_path
) -> None:
    from metaxm.align.priorfit_trainer import PriorFitTrainer

    train = {"vector": 2, "projected": 2, "pixels": 2}
    spec = _trainer_spec(make_spec, source_run, tmp_path, train)
    a = PriorFitTrainer(spec)
    assert a.families == ["vector", "projected"] and a.skipped == ["pixels"]  # no prior of its own
    first = a.update()
    assert a.metafit.unsquashed == {"projected"}  # the squashed sensor bank is read unsquashed
    assert {"query_loss", "query_loss/vector", "start_loss/projected"} <= set(first)
    assert not torch.equal(a.metafit.mean["vector"], torch.zeros_like(a.metafit.mean["vector"]))
    assert (
        float(a.metafit.log_prec["vector"].detach().sub(-3.0).abs().max()) > 0
    )  # both tables learn
    assert "unseen_query_loss" in first
    assert float(a.metafit.unseen.detach().sub(-3.0).abs().max()) > 0  # so does the unseen one
    state = copy.deepcopy(a.state_dict())  # (Adam's loaded state is the state's own tensors)
    old = copy.deepcopy(state)  # as a run begun before the unseen prior was learned saved it
    del old["priorfit"]["unseen"], old["unseen_optimizer"]
    resumes(PriorFitTrainer, spec, a)
    again = PriorFitTrainer(spec)
    again.load_state_dict(state)
    again.update()
    assert torch.equal(again.metafit.unseen, a.metafit.unseen)  # its own Adam state resumed
    assert [n for n, _ in a.named_parameters()] == [
        "mean.vector",
        "mean.projected",
        "log_prec.vector",
        "log_prec.projected",
        "unseen.any",
    ]  # fmt: skip  (the run loop checks every one is finite)
    before = PriorFitTrainer(spec)
    before.load_state_dict(old)
    assert torch.equal(before.metafit.unseen, torch.full_like(a.metafit.unseen, -3.0))
    before.update()
    for kind in ("mean", "log_prec"):  # its families' priors resume exactly still
        assert torch.equal(
            getattr(before.metafit, kind)["vector"], getattr(a.metafit, kind)["vector"]
        )


def test_the_prior_for_any_family_leaves_the_families_priors_as_they_were(
    make_spec, source_run, tmp_path
) -> None:
    """The unseen prior has its own Adam step and clipping: two runs whose unseen priors start
    far apart (so their gradients differ), with a clip that binds, give the families' priors
    the same steps."""
    from metaxm.align.priorfit_trainer import PriorFitTrainer

    train = {"vector": 2, "projected": 2}
    spec = _trainer_spec(make_spec, source_run, tmp_path, train, max_grad_norm=1e-3)
    a, b = PriorFitTrainer(spec), PriorFitTrainer(spec)
    for trainer, start in ((a, -8.0), (b, 8.0)):
        trainer._start()
        trainer.metafit.unseen.data.fill_(start)
    first = [t.update() for t in (a, b)]
    assert first[0]["unseen_query_loss"] != first[1]["unseen_query_loss"]
    assert first[0]["grad_norm"] > 1e-3  # the clip binds
    a.update(), b.update()
    for family in ("vector", "projected"):
        assert torch.equal(a.metafit.mean[family], b.metafit.mean[family])
        assert torch.equal(a.metafit.log_prec[family], b.metafit.log_prec[family])


def test_the_trainer_refuses_a_spec_without_a_vector_family(
    make_spec, source_run, tmp_path
) -> None:
    from metaxm.align.priorfit_trainer import PriorFitTrainer

    with pytest.raises(ConfigError, match="source modality, which must be a vector"):
        PriorFitTrainer(_trainer_spec(make_spec, source_run, tmp_path, {"pixels": 2}))


def test_the_learner_refuses_a_family_without_a_prior_before_playing(make_spec) -> None:
    from metaxm.build import make_env
    from metaxm.learners import PriorFit

    spec = make_spec(modalities={"train": {"vector": 2, "text": 2}, "heldout_variants": {}})
    agent = build_agent(spec)
    prior = MapPrior({"vector": torch.zeros(1, 1)}, {"vector": torch.zeros(1, 1)})
    learner = PriorFit(agent, spec, prior)
    assert learner.cannot_read("vector") is None
    assert "no meta-learned prior for text" in learner.cannot_read("text")
    env = make_env(spec, "text", 0, num_envs=1, seed=0)
    with pytest.raises(ConfigError, match="priorfit cannot adapt to text:0: no meta-learned"):
        learner.adapt(env, 1)
    prior.unseen = torch.zeros(1)  # a prior for any family reads no token ids either
    assert "a linear map does not read text's observations" in learner.cannot_read("text")
    assert learner.cannot_read("audio") == "the agent has no observation space for audio"


def test_the_learner_reads_a_family_never_trained_on_under_the_prior_for_any(make_spec) -> None:
    """A spectrogram the run never trained on: its pairs solved under the unseen prior (the
    map :meth:`MapPrior.solve` gives it, frames and all), read as it is; and ``adapt`` plays
    it."""
    from types import SimpleNamespace

    from metaxm.align.fewshot import collect_paired_steps, default_source
    from metaxm.align.frame_code import frame_shape
    from metaxm.align.priorfit import features
    from metaxm.build import make_env
    from metaxm.learners import PriorFit

    spec = make_spec(modalities={"train": {"vector": 2}, "heldout_families": {"audio": 1}})
    agent = build_agent(spec)
    space, s = agent.observation_spaces["audio"], int(agent.observation_spaces["vector"].shape[0])
    learner = PriorFit(agent, spec, MapPrior({}, {}, set(), torch.full((s,), -1.0)))
    assert learner.cannot_read("audio") is None
    pairs = collect_paired_steps(
        agent, spec, ("audio", 5), source=default_source(spec), seed=0, episodes=2
    ).batch
    policy = SimpleNamespace()
    learner.fit_into(policy, pairs, seed=0)
    x = features(pairs.obs[0], space)
    y = pairs.obs[1].float().flatten(1)
    assert torch.equal(policy.translator.weight, learner.prior.solve("audio", x, y, (32, 4)))
    assert frame_shape(space) == (32, 4)
    assert policy.translator.weight.shape == (128, s) and not bool(policy.translator.unsquashed)
    played = learner.adapt(make_env(spec, "audio", 5, num_envs=1, seed=3), 1)
    assert played.translator.weight.shape == (128, s)


@pytest.mark.parametrize("family", ["vector", "projected"])
def test_a_saved_priorfit_policy_loads_and_acts_as_the_one_adapted(
    make_spec, tmp_path, family
) -> None:
    """``metaxm adapt --save-policy`` of a ``priorfit`` policy: its linear map is saved and
    built again as a map (not as the family's own translator), reading its inputs as it did
    (``projected``'s unsquashed), and acts the same."""
    from metaxm.build import make_env
    from metaxm.learners import AdaptedPolicy, PriorFit

    train = {"vector": 2} | {family: 2}
    spec = make_spec(modalities={"train": train, "heldout_variants": {family: 1}})
    agent = build_agent(spec)
    d = int(agent.observation_spaces[family].shape[0])
    s = int(agent.observation_spaces["vector"].shape[0])
    g = torch.Generator().manual_seed(1)
    mean, log_prec = {family: torch.randn(d, s, generator=g)}, {family: torch.zeros(d, s)}
    prior = MapPrior(mean, log_prec, {family} & {"projected"})
    policy = PriorFit(agent, spec, prior).adapt(make_env(spec, family, 7, num_envs=2), 2)
    assert policy.translator is not None and policy.reads == "vector"
    assert bool(policy.translator.unsquashed) == (family == "projected")
    again = AdaptedPolicy.load(policy.save(tmp_path / "policy.pt"))
    assert (again.learner, again.reads) == ("priorfit", "vector")
    assert torch.equal(again.translator.weight, policy.translator.weight)
    assert bool(again.translator.unsquashed) == (family == "projected")
    obs = make_env(spec, family, 7, num_envs=8, seed=3).reset()
    torch.testing.assert_close(again.distribution(obs), policy.distribution(obs))
