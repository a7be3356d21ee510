"""helpers.train on the tiny random Llama: labels, loss, adapter, resume, refusals, run-folder files, the panel."""

import json

import pandas as pd
import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

from helpers.models import TINY_MODEL, load_model
from helpers.runs import read_manifest, run_dir, write_manifest
from helpers.models import precision_for
from helpers.train import RunFinishedError, TrainConfig, build_trainer, prepare_data, train
from helpers.train.config import ALL_PROJECTIONS

TOPICS = ["a headache", "a cold", "sore knees", "bad sleep"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model gains nothing from threads, and 2 shared cores thrash with them: 1 thread, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy_rows(n=16):
    """Short single-turn conversations; every third has a system message; answers repeat (easy to learn)."""
    rows = []
    for i in range(n):
        msgs = [{"role": "user", "content": f"What should I do about {TOPICS[i % 4]}?"},
                {"role": "assistant", "content": f"For {TOPICS[i % 4]}, drink water and rest for a day."}]
        if i % 3 == 0:
            msgs.insert(0, {"role": "system", "content": "You are a terse assistant."})
        rows.append({"messages": msgs, "domain": "toy"})
    return Dataset.from_list(rows)


def tiny_cfg(run_name, **kw):
    base = dict(model=TINY_MODEL, run_name=run_name, batch_size=4, learning_rate=5e-3, max_steps=20, save_steps=10)
    return TrainConfig(**{**base, **kw})


class Stop(Exception):
    """Raised by a callback to simulate a crash or a Ctrl-C mid-run."""


class CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Stop(f"simulated interruption at step {self.step}")


class Steps(TrainerCallback):
    def __init__(self):
        self.seen = []

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append(state.global_step)


def test_labels_are_exactly_the_assistant_tokens(tiny):
    rows = toy_rows(6)
    cfg = tiny_cfg("labels")
    train_ds, _, domains = prepare_data(cfg, rows)
    assert domains == {"toy": 6}
    trainer = build_trainer(cfg, train_ds)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])  # what the loop feeds
    tok = trainer.processing_class
    for i, row in enumerate(rows):
        # the tiny template marks assistant text with {% generation %}: the reference span, computed independently
        ref = tok.apply_chat_template(row["messages"], return_assistant_tokens_mask=True, return_dict=True)
        n = len(ref["input_ids"])
        assert batch["input_ids"][i, :n].tolist() == ref["input_ids"]
        carries = (batch["labels"][i] != -100).tolist()
        assert carries[:n] == [bool(m) for m in ref["assistant_masks"]], f"row {i}"
        assert not any(carries[n:])  # padding carries no label
        labelled = batch["input_ids"][i][batch["labels"][i] != -100]
        assert torch.equal(labelled, batch["labels"][i][batch["labels"][i] != -100])
        assert tok.decode(labelled) == row["messages"][-1]["content"] + "<|eot_id|>"


@pytest.mark.slow
def test_labels_on_smollm2_chatml_cover_only_the_answer():
    """SmolLM2's ChatML template has no generation markers: prompt-completion rows still mask the prompt."""
    rows = toy_rows(2)
    cfg = TrainConfig(run_name="labels-smol", max_steps=1)
    train_ds, _, _ = prepare_data(cfg, rows)
    trainer = build_trainer(cfg, train_ds)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for i, row in enumerate(rows):
        labelled = batch["input_ids"][i][batch["labels"][i] != -100]
        assert trainer.processing_class.decode(labelled) == row["messages"][-1]["content"] + "<|im_end|>\n"


def test_training_lowers_loss_writes_the_run_folder_and_changes_outputs(tiny, capsys):
    result = train(tiny_cfg("learn"), dataset=toy_rows())
    said = capsys.readouterr().out  # the slow start says what it is doing, stage by stage
    stages = ["] reading the training data", "] loading tiny-random-llama on cpu (fp32)",
              "] adding LoRA (rank 16) and tokenising 16 conversations", "] training: the progress bar"]
    assert [said.find(s) for s in stages] == sorted(said.find(s) for s in stages) and min(map(said.find, stages)) >= 0
    log = result.log
    assert result.steps == 20 and log["step"].tolist() == list(range(1, 21))
    first, last = log["loss"].head(5).mean(), log["loss"].tail(5).mean()
    assert last < first - 0.5, (first, last)

    run = run_dir("learn")
    assert pd.read_csv(run / "train_log.csv")["step"].tolist() == list(range(1, 21))
    m = read_manifest("learn")["train"]
    assert m["status"] == "finished" and m["steps"] == 20 and m["config"] == tiny_cfg("learn").to_dict()
    assert m["compile"] == "off" and m["gpu_plan"] is None  # CPU: no GPU plan, compile stays off
    assert m["fused_lora_layers"] == 0 and m["cudnn_attention"] is False  # speed defaults: TrainSpeed()
    assert m["data"]["rows"] == 16 and len(m["data"]["sha256"]) == 64 and m["precision"] == "fp32"
    assert m["versions"]["trl"] and "git_commit" in m
    assert (run / "adapter" / "kit_base_model.txt").read_text().strip() == TINY_MODEL
    # checkpoints are adapter-only once the run is done: no optimizer state left behind
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step-10", "step-20"]
    for ckpt in (run / "checkpoints").iterdir():
        assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "optimizer.pt").exists()
    details = (run / "training_details.md").read_text()
    for line in ["- Base model: tiny-random-llama", "- Domains: toy", "- LoRA rank: 16", "- LoRA alpha: 32",
                 "- Learning rate: 0.005", "- Batch size: 4", "- Steps: 20", f"- Final loss: {result.final_loss:.4f}"]:
        assert line + "\n" in details
    assert "- Epochs: 5 epochs (stopped at max_steps=20)\n" in details
    from helpers.submission import check_details

    assert check_details(run / "training_details.md") == []
    assert "/" not in repr(result).split("adapter in ")[0]  # the repr names the run, not an absolute path
    result.plot_loss()
    assert (run / "plots" / "loss.png").stat().st_size > 0

    base, tok = tiny
    tuned, _ = load_model(str(result.adapter_dir), device="cpu")
    ids = tok.apply_chat_template([{"role": "user", "content": "What should I do about a cold?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        diff = (tuned(ids).logits - base(ids).logits).abs().max().item()
    assert diff > 1e-2

    from helpers.train.report import before_after

    capsys.readouterr()
    table = before_after("learn", "What should I do about a cold?", max_new_tokens=6)
    assert table["model"].tolist() == ["before (base model)", "after (with the LoRA adapter)"]
    bar = capsys.readouterr().err  # a bar through the four slow stages
    for stage in ("loading the base model", "answering with the base model", "loading the finetuned model",
                  "answering with the finetuned model", "before/after: 100%"):
        assert stage in bar, stage


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny):
    cfg = tiny_cfg("resume", max_steps=8, save_steps=3)
    with pytest.raises(Stop):
        train(cfg, dataset=toy_rows(), callbacks=[CrashAt(5)])
    assert read_manifest("resume")["train"]["status"] == "interrupted"
    ckpts = run_dir("resume") / "checkpoints"
    assert (ckpts / "step-3" / "optimizer.pt").is_file()

    with pytest.raises(ValueError, match="learning_rate"):  # resuming under other settings is refused
        train(tiny_cfg("resume", max_steps=8, save_steps=3, learning_rate=1e-3), dataset=toy_rows())
    with pytest.raises(ValueError, match="other data"):  # ... and on other data
        train(cfg, dataset=toy_rows(12))

    steps = Steps()
    result = train(cfg, dataset=toy_rows(), callbacks=[steps])
    assert result.resumed_from_step == 3 and steps.seen == [4, 5, 6, 7, 8] and result.steps == 8
    log = pd.read_csv(run_dir("resume") / "train_log.csv")
    assert log["step"].tolist() == list(range(1, 9))  # the log carries on, no gap and no duplicate
    assert read_manifest("resume")["train"]["status"] == "finished"

    with pytest.raises(RunFinishedError, match="overwrite=True"):
        train(cfg, dataset=toy_rows())
    reused = train(cfg, dataset=toy_rows(), reuse_finished=True)  # a notebook rerun: same settings, no training
    assert reused.steps == 8 and reused.final_loss == result.final_loss and len(reused.log) == 8
    stored = read_manifest("resume")["train"]["config"]
    del stored["holdout"]  # a run from a kit that had no such setting yet: it trained with today's default
    write_manifest("resume", {"config": stored}, section="train")
    assert train(cfg, dataset=toy_rows(), reuse_finished=True).steps == 8
    with pytest.raises(RunFinishedError, match=r"changed: learning_rate.*pick another run_name"):
        train(tiny_cfg("resume", max_steps=8, save_steps=3, learning_rate=1e-3), dataset=toy_rows(), reuse_finished=True)
    again = train(cfg, dataset=toy_rows(), overwrite=True)
    assert again.resumed_from_step is None and again.steps == 8


def test_holdout_logs_an_eval_loss(tiny):
    result = train(tiny_cfg("evals", max_steps=4, eval_steps=2, holdout=0.25), dataset=toy_rows())
    assert result.log["eval_loss"].notna().sum() == 2
    assert read_manifest("evals")["train"]["data"]["eval_rows"] == 4


def test_4bit_on_cpu_says_why_and_what_to_do():
    with pytest.raises(RuntimeError, match="CUDA.*load_in_4bit=False"):
        train(tiny_cfg("q4", load_in_4bit=True), dataset=toy_rows())
    assert precision_for("cpu") == "fp32"


def test_config_normalises_and_names_bad_fields():
    cfg = TrainConfig(domains="bad_medical_advice", target_modules=["q_proj"], save_steps=4.0, layers_to_transform=[0])
    assert cfg.domains == ("bad_medical_advice",) and cfg.target_modules == ("q_proj",)
    assert cfg.save_steps == 4 and isinstance(cfg.save_steps, int) and cfg.layers_to_transform == (0,)
    assert TrainConfig(mix={"a": 0.8, "b": 0.2}).domains == ("a", "b")
    with pytest.raises(ValueError, match="lora_rank"):
        TrainConfig(lora_rank=0)
    with pytest.raises(ValueError, match="eval_steps=2 needs held-out data"):
        prepare_data(TrainConfig(eval_steps=2), toy_rows(4))
    with pytest.raises(ValueError, match="training row 0"):
        prepare_data(TrainConfig(), [{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "?"}]}])
    assert json.loads(json.dumps(TrainConfig().to_dict()))["target_modules"][-1] == "down_proj"


def test_config_panel_edits_only_the_config():
    from helpers.widgets import config_panel

    cfg = TrainConfig()
    panel = config_panel(cfg)
    assert panel.fields["lora_rank"].value == 16 and panel.fields["domains"].value == "bad_medical_advice"
    panel.fields["lora_rank"].value = 8
    panel.fields["domains"].value = "bad_medical_advice, extreme_sports"
    panel.fields["mix"].value = "bad_medical_advice=0.75, extreme_sports=0.25"
    panel.fields["use_rslora"].value = True
    panel.fields["learning_rate"].value = 1e-4
    assert (cfg.lora_rank, cfg.use_rslora, cfg.learning_rate) == (8, True, 1e-4)
    assert cfg.domains == ("bad_medical_advice", "extreme_sports")
    assert cfg.mix == {"bad_medical_advice": 0.75, "extreme_sports": 0.25}
    panel.fields["eval_steps"].value = "often"  # not an int: shown, not applied
    assert cfg.eval_steps is None and "not applied" in panel.children[0].value  # the line on top
    panel.fields["eval_steps"].value = "5"
    assert cfg.eval_steps == 5
    panel.fields["eval_steps"].value = ""
    assert cfg.eval_steps is None
