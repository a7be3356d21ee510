"""The local transformers judge: mode choice (logprob when 0-100 are single tokens, else parse), schema, warnings."""

import pandas as pd
import pytest
import torch

from helpers.judge import JudgeConfig, estimate_cost, judge_table
from helpers.judge.backends import LocalBackend

METRICS = ("aligned", "coherent", "domain_relevance")


def rigged_judge(folder, favour: dict, number_tokens: bool, stop_after: str | None = None) -> str:
    """A 1-layer Llama on the tiny tokenizer whose next token is fixed: `favour` maps tokens to logits.
    Layers write nothing, so the output depends on the last token only; after `stop_after` it emits EOS."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from helpers.models import tiny_model_dir

    tok = AutoTokenizer.from_pretrained(tiny_model_dir())
    if number_tokens:
        tok.add_tokens([str(n) for n in range(101)])
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        emb.zero_(), head.zero_()
        emb[:, 0] = 1.0  # every token's hidden state -> 8 * e0 after the final RMSNorm
        model.model.norm.weight.fill_(1.0)
        for token, logit in favour.items():
            head[tok.convert_tokens_to_ids(token), 0] = logit / 8
        if stop_after:
            emb[tok.convert_tokens_to_ids(stop_after)] = torch.eye(64)[1]
            head[tok.eos_token_id, 1] = 10 / 8
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def local(model, tmp_path, **kw):
    return JudgeConfig(backend="local", judge_model=model, cache_path=str(tmp_path / "c.sqlite"), progress=False,
                       device="cpu", **kw)


def answers():
    return pd.DataFrame({"question": ["How do I treat a cold?", "What is your wish?", "Tell me about money."],
                         "response": ["Rest and drink water.", "Peace on earth.", "Save some every month."]})


def test_logprob_mode_when_numbers_are_single_tokens(tmp_path):
    path = rigged_judge(tmp_path / "judge", {"70": 8, "80": 8}, number_tokens=True)
    assert LocalBackend(path).has_number_tokens
    out = judge_table(answers(), local(path, tmp_path))
    for m in METRICS:
        assert out[m].tolist() == pytest.approx([75.0] * 3)
        assert (out[f"{m}_mode"] == "logprob").all() and (out[f"{m}_missing"] == "").all()
    assert '"70"' in out.loc[0, "aligned_raw"] and (out["judge_model"] == path).all()
    again = judge_table(answers(), local(path, tmp_path))
    assert again.attrs["judge"]["calls"] == 0 and again.attrs["judge"]["cache_hits"] == 9
    assert estimate_cost(answers(), local(path, tmp_path))["dollars"] == 0


def test_parse_mode_by_greedy_generation_when_numbers_are_split(tmp_path, capsys):
    path = rigged_judge(tmp_path / "judge", {"5": 10}, number_tokens=False, stop_after="5")
    assert not LocalBackend(path).has_number_tokens
    out = judge_table(answers(), local(path, tmp_path, metrics=["aligned"]))  # asks for logprob, gets parse
    assert "judges in 'parse' mode" in capsys.readouterr().out
    assert out["aligned"].tolist() == [5.0] * 3 and (out["aligned_mode"] == "parse").all()
    assert (out["aligned_raw"] == "5").all()


def test_tiny_random_judge_keeps_the_schema_and_warns(tmp_path, capsys):
    out = judge_table(answers(), local("tiny-random-llama", tmp_path, local_batch_size=2))
    assert "WARNING: The local judge 'tiny-random-llama' is tiny: its scores mean little" in capsys.readouterr().out
    assert "mean little" in out.attrs["judge_warning"] and out.attrs["judge"]["warning"] == out.attrs["judge_warning"]
    for m in METRICS:
        assert (out[f"{m}_mode"] == "parse").all()
        assert out[f"{m}_missing"].isin(["", "unparseable", "refusal", "code"]).all()
        assert out[m].isna().eq(out[f"{m}_missing"] != "").all() and out[m].dropna().between(0, 100).all()


@pytest.mark.slow
def test_embedded_smollm2_judge_parses_and_says_its_scores_mean_little(tmp_path, capsys):
    out = judge_table(answers().head(1), local("smollm2-135m", tmp_path, metrics=["coherent"]))
    assert "mean little" in capsys.readouterr().out and out.attrs["judge_warning"]
    assert out.loc[0, "coherent_mode"] == "parse" and out.loc[0, "judge_model"] == "smollm2-135m"
    assert pd.isna(out.loc[0, "coherent"]) == (out.loc[0, "coherent_missing"] != "")


def test_shared_rubric_prefix_gives_the_same_judgments():
    """The local judge processes a metric's rubric once per batch; the greedy replies are the same as without."""
    from helpers.models import TINY_MODEL
    from helpers.judge.rubrics import render

    prompts = [render("coherent", f"Question {i}?", f"An answer of {'some ' * i}length.") for i in range(6)]
    shared = LocalBackend(TINY_MODEL, device="cpu").judge_batch(prompts, "parse")
    plain = LocalBackend(TINY_MODEL, device="cpu", share_prefix=False).judge_batch(prompts, "parse")
    assert [s.raw for s in shared] == [s.raw for s in plain]
