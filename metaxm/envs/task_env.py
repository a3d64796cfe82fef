"""TaskEnv: a batched world seen through modality variants, with auto-reset and episode stats.

This is the environment every learner in metaxm steps. It holds one :class:`World` of B
environments and one modality :class:`~metaxm.modalities.base.Family`; every environment has
its own task parameters and its own variant of the family (so one TaskEnv can hold a whole
meta-batch of tasks that share a family). Stepping is tensor-only; finished episodes are
reset in the same step (gymnasium's ``SAME_STEP`` auto-reset): the observation returned for a
finished environment is the first of its next episode, and ``info["final_obs"]`` holds the last
one when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metaxm.envs.base import TaskParams, World
from metaxm.envs.instructions import instructed_space, with_instruction
from metaxm.modalities.base import Family, VariantParams, get_family, stack_params

MAX_CACHED_VARIANTS = 4096
"""Variants whose parameters a TaskEnv keeps built; beyond, it forgets the oldest (a
meta-learner on ``variants: fresh`` meets a new one every task)."""


class TaskEnv:
    """B environments of one world, each with its own task and variant of one family.

    Args:
        world: the batched world (its ``num_envs`` is B).
        family: the modality family name or instance.
        variants: one variant seed for all environments, or one per environment.
        tasks: per-environment task parameters; None keeps the world's current tasks.
        seed: seeds the observation-noise generator (the world has its own).
        final_obs: also render the last observation of finished episodes into ``info``.
        resample_tasks: at auto-reset, give finished environments fresh tasks drawn from the
            world's task distribution (the gymnasium API's per-episode tasks); by default an
            environment keeps its task across episodes, as meta-RL trials need.
    """

    def __init__(
        self,
        world: World,
        family: str | Family,
        variants: int | Sequence[int] = 0,
        tasks: TaskParams | None = None,
        seed: int = 0,
        final_obs: bool = False,
        resample_tasks: bool = False,
    ) -> None:
        self.world = world
        self.family = get_family(family) if isinstance(family, str) else family
        self.family.check_scene(world.scene_info)
        self.num_envs = world.num_envs
        self.device = world.device
        self.final_obs = final_obs
        self.resample_tasks = resample_tasks
        # an instruction world's observations carry the instruction (metaxm.envs.instructions)
        self.observation_space = instructed_space(
            self.family.observation_space(world.scene_info), world.scene_info
        )
        self.action_space = world.action_space
        self.render_generator = torch.Generator(self.device).manual_seed(seed + 7919)
        self._variant_cache: dict[int, VariantParams] = {}
        # defined before the first reset, so that a TaskEnv's state can be saved at any time
        self.episode_return = torch.zeros(self.num_envs, device=self.device)
        self.episode_length = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.set_tasks(tasks, variants)

    # ------------------------------------------------------------------ tasks and variants
    def set_tasks(
        self, tasks: TaskParams | None = None, variants: int | Sequence[int] | None = None
    ) -> None:
        """Assign new tasks and/or variants to all environments (then call :meth:`reset`)."""
        if tasks is not None:
            self.world.set_tasks(tasks)
        if variants is not None:
            seeds = [int(variants)] * self.num_envs if isinstance(variants, int) else list(variants)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} variants for {self.num_envs} environments")
            self.variants = seeds
            self._variant_ids = self._ids_tensor()
            if len(set(seeds)) == 1:
                one = self._params(seeds[0])
                self.params = {
                    k: v.to(self.device).unsqueeze(0).expand(self.num_envs, *v.shape)
                    for k, v in one.items()
                }
            else:
                self.params = stack_params([self._params(s) for s in seeds], self.device)

    def set_env_tasks(
        self,
        env_ids: Tensor,
        tasks: TaskParams | None = None,
        variants: Sequence[int] | None = None,
    ) -> None:
        """Give some environments new tasks and/or variants and start new episodes there.

        The others are untouched; call :meth:`observe` for the new observations. (RL^2 uses
        this at the end of a trial; :meth:`set_tasks` is the all-environments form.)

        Args:
            env_ids: (K,) long, the environments.
            tasks: K rows of task parameters.
            variants: K variant seeds.
        """
        if tasks is not None:
            self.world.set_tasks(tasks, env_ids)
        if variants is not None:
            self.set_env_variants(env_ids, variants)
        self.world.reset(env_ids)
        self.episode_return[env_ids] = 0.0
        self.episode_length[env_ids] = 0

    def set_env_variants(self, env_ids: Tensor, variants: Sequence[int]) -> None:
        """Show some environments through other variants from the next render on, without
        touching their state (a sensor re-wired mid-episode); :meth:`observe` renders it.

        Args:
            env_ids: (K,) long, the environments.
            variants: K variant seeds.
        """
        ids = env_ids.tolist()
        if len(variants) != len(ids):
            raise ValueError(f"got {len(variants)} variants for {len(ids)} environments")
        for i, s in zip(ids, variants):
            self.variants[i] = int(s)
        self._variant_ids = self._ids_tensor()  # a new tensor: rollouts keep the old one
        rows = stack_params([self._params(int(s)) for s in variants], self.device)
        for k, v in rows.items():
            if self.params[k].stride(0) == 0:  # an expanded view of one variant: own it
                self.params[k] = self.params[k].contiguous()
            self.params[k][env_ids] = v

    def variant_ids(self) -> Tensor:
        """The variant seed of each environment now, (B,) long on the env's device (built
        when the variants change, not on every call; never modified in place)."""
        return self._variant_ids

    def _ids_tensor(self) -> Tensor:
        return torch.tensor(self.variants, dtype=torch.long, device=self.device)

    def _params(self, seed: int) -> VariantParams:
        if seed not in self._variant_cache:
            if len(self._variant_cache) >= MAX_CACHED_VARIANTS:  # fresh variants: forget the oldest
                del self._variant_cache[next(iter(self._variant_cache))]
            self._variant_cache[seed] = self.family.variant(seed, self.world.scene_info)
        return self._variant_cache[seed]

    # ------------------------------------------------------------------ stepping
    def observe(self) -> Tensor:
        """Render the current states: (B, *observation_space.shape)."""
        scene = self.world.scene()
        obs = self.family.render(scene, self.params, self.render_generator)
        return with_instruction(obs, scene)

    def reset(self) -> Tensor:
        """Start new episodes everywhere; returns the first observations."""
        self.world.reset()
        self.episode_return = torch.zeros(self.num_envs, device=self.device)
        self.episode_length = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        return self.observe()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Step every environment and auto-reset the finished ones.

        Returns:
            obs (B, ...), reward (B,), terminated (B,) bool, truncated (B,) bool, and ``info``
            with ``success`` (B,) bool and, valid where ``terminated | truncated``,
            ``episode_return`` (B,) and ``episode_length`` (B,); plus ``final_obs`` when asked.
        """
        reward, terminated, success = self.world.step(actions)
        truncated = self.world.truncated() & ~terminated
        done = terminated | truncated
        self.episode_return += reward
        self.episode_length += 1
        info = {
            "success": success,
            "episode_return": self.episode_return.clone(),
            "episode_length": self.episode_length.clone(),
        }
        ids = done.nonzero().squeeze(1)
        if ids.numel():
            if self.final_obs:
                info["final_obs"] = self.observe()
            if self.resample_tasks:
                self.world.set_tasks(self.world.sample_tasks(ids.shape[0]), ids)
            self.world.reset(ids)
            self.episode_return[ids] = 0.0
            self.episode_length[ids] = 0
        return self.observe(), reward, terminated, truncated, info
