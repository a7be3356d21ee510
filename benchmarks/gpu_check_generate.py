"""GPU smoke check of helpers.generate.generate(): the auto path (fast sampler) against HF generate, greedy."""
import json
import os

from helpers.generate import generate
from helpers.models import TINY_MODEL, load_model

model, tok = load_model(TINY_MODEL, device="cuda")
questions = ["Hello there", "How are you today?", "Tell me a story about a cat."]
auto = generate((model, tok), questions, samples_per_question=4, max_new_tokens=24, progress=False)
fast = generate((model, tok), questions, samples_per_question=2, max_new_tokens=16, temperature=0, progress=False)
hf = generate((model, tok), questions, samples_per_question=2, max_new_tokens=16, temperature=0, sampler="hf",
              progress=False)
result = {"auto_rows": len(auto), "auto_tokens_per_s": auto.attrs.get("tokens_per_s"),
          "greedy_fast_equals_hf": fast.response.tolist() == hf.response.tolist(),
          "leaks": int(auto.response.str.contains("<\\|").sum()), "example": auto.response.iloc[0][:80]}
print(json.dumps(result))
if os.environ.get("OUT"):
    json.dump(result, open(os.path.join(os.environ["OUT"], "generate_check.json"), "w"))
