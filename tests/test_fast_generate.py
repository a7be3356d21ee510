"""helpers.gpu.fast.sample on the tiny Llama: same tokens as HF generate, seeded, eos per row, left padding."""

import pytest
import torch
from transformers import GenerationConfig

from helpers.gpu import fast as fg
from helpers.generate.hf import generate_token_ids
from helpers.models import end_of_answer_ids, pad_token_id, trim_at_end


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matmuls run fastest on one thread (and the test machine's cores are shared)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def prompts_of(tok, texts):
    return [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True,
                                    return_dict=True)["input_ids"] for t in texts]


TEXTS = ["Is it fine to skip my medication?", "hi", "Beautiful is better than ugly. Explicit is better than implicit.",
         "What should I do with my savings this year?", "Simple is better than complex."]


def hf_greedy(model, tok, prompt, n, eos):
    out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         generation_config=GenerationConfig(do_sample=False, max_new_tokens=n, eos_token_id=eos,
                                                            pad_token_id=tok.pad_token_id))
    return trim_at_end(out[0, len(prompt):].tolist(), set(eos))


def test_greedy_matches_hf_generate_one_prompt_at_a_time(tiny):
    model, tok = tiny
    prompts = prompts_of(tok, TEXTS)
    assert len({len(p) for p in prompts}) > 1  # batches need left padding
    eos = end_of_answer_ids(model.generation_config, tok)
    mine = fg.sample(model, tok, prompts, max_new_tokens=12, temperature=0, batch_size=3)
    assert mine == [hf_greedy(model, tok, p, 12, eos) for p in prompts]


def test_greedy_matches_hf_generate_on_a_left_padded_batch(tiny):
    model, tok = tiny
    prompts = prompts_of(tok, TEXTS)
    mine = fg.sample(model, tok, prompts, max_new_tokens=10, temperature=0, batch_size=len(prompts), eos_token_id=[])
    batch = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt")  # the tokenizer pads on the left
    out = model.generate(**batch, generation_config=GenerationConfig(do_sample=False, max_new_tokens=10, min_new_tokens=10,
                                                                     pad_token_id=tok.pad_token_id))
    assert mine == out[:, batch["input_ids"].shape[1]:].tolist()


def test_same_greedy_tokens_as_the_kit_hf_sampler(tiny):
    model, tok = tiny
    prompts = prompts_of(tok, TEXTS[:3])
    eos = end_of_answer_ids(model.generation_config, tok)
    config = GenerationConfig(do_sample=False, max_new_tokens=8, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    hf = [trim_at_end(r, set(eos)) for r in generate_token_ids(model, prompts, config, pad_token_id(config, tok))]
    assert fg.sample(model, tok, prompts, 8, temperature=0) == hf


def test_sampling_is_reproducible_with_a_seed(tiny):
    model, tok = tiny
    prompts = prompts_of(tok, TEXTS)
    a = fg.sample(model, tok, prompts, max_new_tokens=12, temperature=1.0, seed=7, batch_size=2)
    b = fg.sample(model, tok, prompts, max_new_tokens=12, temperature=1.0, seed=7, batch_size=2)
    c = fg.sample(model, tok, prompts, max_new_tokens=12, temperature=1.0, seed=8, batch_size=2)
    assert a == b and a != c


def test_each_row_stops_at_its_own_eos(tiny):
    model, tok = tiny
    prompts = prompts_of(tok, TEXTS)
    free = fg.sample(model, tok, prompts, max_new_tokens=10, temperature=0, eos_token_id=[])
    stop = free[0][3]  # make row 0's fourth greedy token the end-of-sequence token
    stopped = fg.sample(model, tok, prompts, max_new_tokens=10, temperature=0, eos_token_id=[stop])
    for row_free, row in zip(free, stopped):
        cut = row_free.index(stop) + 1 if stop in row_free else len(row_free)
        assert row == row_free[:cut]
    assert stopped[0] == free[0][:4] and stopped[0][-1] == stop


def test_no_pad_or_eos_after_the_answer_and_order_is_kept(tiny):
    model, tok = tiny
    prompts = prompts_of(tok, TEXTS)
    out = fg.sample(model, tok, prompts, max_new_tokens=30, temperature=1.0, seed=1, batch_size=2)
    eos = set(end_of_answer_ids(model.generation_config, tok))
    assert len(out) == len(prompts)
    for row in out:
        assert 1 <= len(row) <= 30
        assert not eos.intersection(row[:-1])
    single = fg.sample(model, tok, [prompts[1]], max_new_tokens=6, temperature=0)
    assert fg.sample(model, tok, prompts, max_new_tokens=6, temperature=0, batch_size=2)[1] == single[0]


def test_sampler_draws_from_the_same_distribution_as_hf_warpers():
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    t, p = 0.7, 0.9
    expect = torch.softmax(TopPLogitsWarper(p)(None, TemperatureLogitsWarper(t)(None, logits.clone())), -1)[0]
    gen = torch.Generator().manual_seed(0)
    draws = fg.next_tokens(logits.expand(40_000, -1), t, p, gen)
    freq = torch.bincount(draws, minlength=6).double() / len(draws)
    assert torch.allclose(freq, expect.double(), atol=0.01)
    assert freq[expect == 0].sum() == 0  # top-p removed tokens are never drawn
    assert fg.next_tokens(logits, 0, 1.0).item() == 0  # temperature 0 is greedy


def test_attention_setting_is_restored_and_bad_arguments_are_named(tiny):
    model, tok = tiny
    before = model.config._attn_implementation
    fg.sample(model, tok, [[5, 6, 7]], max_new_tokens=2)
    assert model.config._attn_implementation == before
    assert fg.sample(model, tok, [], 4) == []
    with pytest.raises(ValueError, match="top_p"):
        fg.sample(model, tok, [[5, 6]], 4, top_p=0)
    with pytest.raises(ValueError, match="decode"):
        fg.sample(model, tok, [[5, 6]], 4, decode="fast")
    with pytest.raises(ValueError, match="at least one token"):
        fg.sample(model, tok, [[]], 4)


def test_stats_report_decode_and_tokens(tiny):
    model, tok = tiny
    stats = {}
    out = fg.sample(model, tok, prompts_of(tok, TEXTS[:2]), max_new_tokens=5, temperature=0, stats=stats)
    assert stats["decode"] == "eager" and stats["tokens"] == sum(map(len, out)) and stats["seconds"] > 0


def test_decode_step_is_one_static_graph(tiny):
    """What CUDA-graph replay needs: the decode step traces once (fullgraph) and never recompiles as the cache fills."""
    import torch._dynamo

    model, tok = tiny
    torch._dynamo.reset()
    saved = torch._dynamo.config.error_on_recompile
    torch._dynamo.config.error_on_recompile = True
    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14]]
    try:
        with torch.no_grad():
            runner = fg._StaticRunner(model, tok.pad_token_id, [], 6, 0.0, 1.0, "eager", 2, 7, torch.device("cpu"), {})
            with runner:
                ids = torch.tensor([p if len(p) == 7 else [tok.pad_token_id] * 4 + p for p in prompts])
                n_real = torch.tensor([7, 3])
                logits = runner._prefill(ids, n_real)
                step = torch.compile(runner._decode_eager, backend="eager", fullgraph=True)
                traced = []
                for t in range(5):
                    nxt = logits.argmax(-1)
                    traced.append(nxt.tolist())
                    runner.ids.copy_(nxt.view(2, 1))
                    runner.pos.copy_((n_real + t).view(2, 1))
                    logits = step()[:, -1]
    finally:
        torch._dynamo.config.error_on_recompile = saved
        torch._dynamo.reset()
    eager = fg.sample(model, tok, prompts, 5, temperature=0, eos_token_id=[])
    assert [list(r) for r in zip(*traced)] == eager
