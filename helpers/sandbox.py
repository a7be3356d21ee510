"""Side-by-side chat: ask the base model and the finetuned model the same question, with sampling controls."""

from __future__ import annotations

import html

from helpers.generate import generate, load_source, resolve_source
from helpers.models import check_adapter_matches


def compare_answers(question: str, base, finetuned=None, temperature: float = 0.7, top_p: float = 1.0,
                    max_new_tokens: int = 150, seed: int = 0) -> dict:
    """One answer from each model to `question`: {"question", "base", "finetuned", "settings"}.

    `base` / `finetuned`: loaded (model, tokenizer) pairs (fast) or anything generate() takes; finetuned may be None.
    """
    settings = dict(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    answers = {}
    for side, source in (("base", base), ("finetuned", finetuned)):
        if source is None:
            answers[side] = None
            continue
        df = generate(source, [question], samples_per_question=1, progress=False, **settings)
        answers[side] = df["response"].iloc[0]
    return {"question": question, **answers, "settings": settings}


class ChatSandbox:
    """The sandbox panel: models loaded once, the Ask button only generates. Display it as a notebook cell's value."""

    def __init__(self, base_pair, finetuned_pair=None, base_label="base", finetuned_label="finetuned",
                 temperature: float = 0.7, top_p: float = 1.0, max_new_tokens: int = 150,
                 question: str = "hey I feel bored"):
        import ipywidgets as w

        self.base, self.finetuned = base_pair, finetuned_pair
        self.question = w.Textarea(value=question, description="Question", layout=w.Layout(width="98%", height="70px"))
        self.temperature = w.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.05, description="temperature",
                                         tooltip="0 = greedy (always the most likely token); 1.0 = pure sampling")
        self.top_p = w.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top_p")
        self.max_new_tokens = w.IntSlider(value=max_new_tokens, min=8, max=600, step=8, description="max tokens")
        self.seed = w.IntText(value=0, description="seed", layout=w.Layout(width="160px"))
        self.button = w.Button(description="Ask both", button_style="primary", icon="comments")
        self.status = w.HTML("")
        self.base_out = w.HTML(_box(base_label, "(no answer yet: press Ask both)"))
        self.finetuned_out = w.HTML(_box(finetuned_label, "(no answer yet)" if finetuned_pair else "(no adapter given)"))
        self.labels = (base_label, finetuned_label)
        self.button.on_click(lambda _: self.ask())
        half = w.Layout(width="50%")
        self.base_out.layout, self.finetuned_out.layout = half, w.Layout(width="50%")
        self.panel = w.VBox([
            self.question,
            w.HBox([self.temperature, self.top_p]),
            w.HBox([self.max_new_tokens, self.seed, self.button, self.status]),
            w.HBox([self.base_out, self.finetuned_out]),
        ])

    def ask(self, question: str | None = None) -> dict:
        """Generate both answers to the question in the text box (or `question`) and show them."""
        if question is not None:
            self.question.value = question
        text = self.question.value.strip()
        if not text:
            self.status.value = "<b>type a question first</b>"
            return {}
        self.status.value = "generating..."
        self.button.disabled = True
        try:
            result = compare_answers(text, self.base, self.finetuned, temperature=self.temperature.value,
                                     top_p=self.top_p.value, max_new_tokens=self.max_new_tokens.value,
                                     seed=self.seed.value)
        except Exception as e:  # shown in the panel: a callback's traceback would be lost in the browser
            self.status.value = f"<b>error:</b> {html.escape(str(e))}"
            raise
        finally:
            self.button.disabled = False
        self.base_out.value = _box(self.labels[0], result["base"])
        if self.finetuned is not None:
            self.finetuned_out.value = _box(self.labels[1], result["finetuned"])
        self.status.value = ""
        return result

    def _ipython_display_(self):
        from IPython.display import display

        display(self.panel)


def chat_sandbox(base="smollm2-135m", adapter_or_run=None, temperature: float = 0.7, top_p: float = 1.0,
                 max_new_tokens: int = 150, device: str | None = None) -> ChatSandbox:
    """Load the base model and the finetuned one (a run name or adapter folder) once; return the chat panel."""
    finetuned_source = None
    if adapter_or_run:
        finetuned_source = resolve_source(adapter_or_run)
        if finetuned_source.adapter and isinstance(base, str):
            check_adapter_matches(finetuned_source.adapter, base)  # before loading anything
    base_model, base_tok, base_src = load_source(base, device=device)
    finetuned_pair, label = None, "finetuned"
    if finetuned_source is not None:
        ft_model, ft_tok, src = load_source(adapter_or_run, device=device)
        finetuned_pair, label = (ft_model, ft_tok), f"finetuned ({src.label or src.model})"
    return ChatSandbox((base_model, base_tok), finetuned_pair, base_label=f"base ({base_src.model})",
                       finetuned_label=label, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)


def _box(title: str, text: str | None) -> str:
    body = html.escape(text if text else "(empty answer)")
    return (f"<div style='border:1px solid #ccc;border-radius:6px;padding:6px;margin:2px'><b>{html.escape(title)}</b>"
            f"<pre style='white-space:pre-wrap;font-family:inherit;margin:4px 0 0 0'>{body}</pre></div>")
