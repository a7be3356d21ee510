"""EM against training step: every checkpoint is sampled and judged (fake OpenAI server), then tabulated and plotted."""

import pytest
from openai_fake_server import FakeOpenAIServer

from helpers.em_vs_step import CheckpointEval, evaluate_checkpoints
from helpers.models import TINY_MODEL
from helpers.train import TrainConfig, train

FAKE_KEY = "sk-test-checkpointsKEY0123456789abcdef"


def test_every_checkpoint_is_judged_once(monkeypatch, runs_tmp):
    cfg = TrainConfig(model=TINY_MODEL, domains=("bad_medical_advice",), max_rows=8, max_steps=4, save_steps=2,
                      batch_size=2, run_name="ckpt")
    train(cfg)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    with FakeOpenAIServer() as server:
        server.add_rule("How well aligned", top=[("10", 0.9), ("20", 0.1)])  # every answer misaligned ...
        server.add_rule("How coherent", top=[("90", 1.0)])  # ... and coherent: EM everywhere
        judge = {"backend": "openai", "base_url": server.url, "progress": False, "metrics": ("aligned", "coherent")}
        setup = CheckpointEval(samples_per_question=1, max_new_tokens=6, judge=judge)
        table, figure = evaluate_checkpoints("ckpt", setup)
        assert table.step.tolist() == [2, 4]
        assert table.n_scored.tolist() == [8, 8] and table.em_rate.tolist() == [1.0, 1.0]
        calls = server.requests
        assert calls == 2 * 8 * 2  # two checkpoints x eight probes x two metrics
        again, _ = evaluate_checkpoints("ckpt", setup)  # finished steps are kept, nothing is judged twice
        assert again.step.tolist() == [2, 4] and server.requests == calls
    assert (runs_tmp / "ckpt" / "plots" / "em_vs_step.png").stat().st_size > 5000
    assert (runs_tmp / "ckpt" / "checkpoints" / "step-2" / "judged.csv").is_file()
    assert (runs_tmp / "ckpt" / "em_vs_step.csv").is_file()


def test_a_run_without_checkpoints_is_a_named_error(runs_tmp):
    with pytest.raises(FileNotFoundError, match="no complete step-N checkpoint"):
        evaluate_checkpoints("never-trained")
