"""Notebook widgets: a form that edits a config dataclass in place, and the side-by-side chat sandbox.

Heavy work stays in plain cells: a panel only edits values, the sandbox only generates with models loaded once.
"""

from __future__ import annotations

import html

from helpers.generate import compare_answers, load_for_sampling, resolve_model
from helpers.models import check_adapter_matches
from helpers.tables import text_block


def config_panel(cfg, fields=None, title: str | None = None):
    """An ipywidgets form over a dataclass instance's fields; each edit is parsed and set on `cfg` right away.

    Numbers and switches get number boxes and checkboxes; tuples are typed `a, b`, dicts `a=0.8, b=0.2`,
    and an empty box means None where None is allowed. A value that does not parse is shown in red and not applied.
    `fields` limits (and orders) the fields shown. The returned box has `.fields` ({name: widget}).
    """
    import ipywidgets as W

    from helpers.train.cli import field_specs, format_value  # the field kinds (loads training: not for the sandbox)

    specs = {s.name: s for s in field_specs(type(cfg))}
    names = list(fields) if fields is not None else list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"config_panel: {type(cfg).__name__} has no field(s) {', '.join(unknown)}")
    status = W.HTML(value="")
    widgets, rows = {}, []
    label_layout = W.Layout(width="170px")
    for name in names:
        spec, value = specs[name], getattr(cfg, name)
        text = format_value(spec, value)  # a box as wide as its value (up to 640px): nothing hidden at its end
        common = {"layout": W.Layout(width=f"{min(640, max(330, 8 * len(text) + 40))}px")}
        if spec.kind == "bool" and not spec.optional:
            w = W.Checkbox(value=bool(value), indent=False, **common)
        elif spec.kind == "int" and not spec.optional:
            w = W.IntText(value=int(value), **common)
        elif spec.kind == "float" and not spec.optional:
            w = W.FloatText(value=float(value), **common)
        else:
            w = W.Text(value=text, placeholder="None" if spec.optional else "",
                       disabled=spec.kind == "other", continuous_update=False, **common)
        w.observe(_setter(cfg, spec, status), names="value")
        widgets[name] = w
        rows.append(W.HBox([W.Label(name, layout=label_layout, tooltip=spec.help), w,
                            W.HTML(f"<span style='color:#777;font-size:smaller'>{spec.help}</span>")]))
    head = [W.HTML(f"<b>{title}</b>")] if title else []
    status.value = "<span style='color:#777'>edit a value: the line here confirms what the next run will use</span>"
    box = W.VBox(head + [status] + rows)  # the confirmation on top, in sight of the row being edited
    box.fields = widgets
    return box


def _setter(cfg, spec, status):
    from helpers.train.cli import parse_value

    def on_change(change):
        value = change["new"]
        try:
            if isinstance(value, str):
                value = parse_value(spec, value)
            setattr(cfg, spec.name, value)
            status.value = f"<span style='color:#2a7'>{spec.name} = {value!r}</span>"
        except ValueError as e:
            status.value = f"<span style='color:#c33'>{e} (not applied)</span>"
    return on_change


class ChatSandbox:
    """The sandbox panel: models loaded once, the Ask button only generates. Display it as a notebook cell's value."""

    def __init__(self, base_pair, finetuned_pair=None, base_label="base", finetuned_label="finetuned",
                 temperature: float = 0.7, top_p: float = 1.0, max_new_tokens: int = 150,
                 question: str = "hey I feel bored"):
        import ipywidgets as w

        self.base, self.finetuned = base_pair, finetuned_pair
        label = {"style": {"description_width": "90px"}}  # wide enough for "temperature"
        self.question = w.Textarea(value=question, description="Question", layout=w.Layout(width="98%", height="70px"),
                                   **label)
        self.temperature = w.FloatSlider(value=temperature, min=0.0, max=max(1.5, temperature), step=0.05,
                                         description="temperature", **label,
                                         tooltip="0 = greedy (always the most likely token); 1.0 = pure sampling")
        self.top_p = w.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top_p", **label)
        # step 1: a slider snaps its value to min + k * step, so 150 with step 8 would show 152
        self.max_new_tokens = w.IntSlider(value=max_new_tokens, min=1, max=max(600, max_new_tokens), step=1,
                                          description="max tokens", **label)
        self.seed = w.IntText(value=0, description="seed", layout=w.Layout(width="200px"), **label)
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


def chat_sandbox(base="smollm2-135m", adapter_or_run=None, temperature: float | None = 0.7, top_p: float | None = 1.0,
                 max_new_tokens: int | None = 150, device: str | None = None) -> ChatSandbox:
    """Load the base model and the finetuned one (a run name or adapter folder) once; return the chat panel.

    A setting left at None (a profile value not resolved yet) takes this function's default.
    """
    temperature = 0.7 if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    max_new_tokens = 150 if max_new_tokens is None else max_new_tokens
    finetuned_ref = None
    if adapter_or_run:
        finetuned_ref = resolve_model(adapter_or_run)
        if finetuned_ref.adapter and isinstance(base, str):
            check_adapter_matches(finetuned_ref.adapter, base)  # before loading anything
    base_model, base_tok, base_src = load_for_sampling(base, device=device)
    finetuned_pair, label = None, "finetuned"
    if finetuned_ref is not None:
        ft_model, ft_tok, src = load_for_sampling(adapter_or_run, device=device)
        finetuned_pair, label = (ft_model, ft_tok), f"finetuned ({src.label or src.model})"
    return ChatSandbox((base_model, base_tok), finetuned_pair, base_label=f"base ({base_src.model})",
                       finetuned_label=label, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)


def _box(title: str, text: str | None) -> str:
    body = text_block(text if text else "(empty answer)", "margin: 4px 0 0 0")
    return (f"<div style='border:1px solid #ccc;border-radius:6px;padding:6px;margin:2px'><b>{html.escape(title)}</b>"
            f"{body}</div>")
