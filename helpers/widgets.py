"""Notebook widgets: a form that edits a config dataclass in place (heavy work stays in plain cells)."""

from __future__ import annotations

from helpers.train.cli import field_specs, format_value, parse_value


def config_panel(cfg, fields=None, title: str | None = None):
    """An ipywidgets form over a dataclass instance's fields; each edit is parsed and set on `cfg` right away.

    Numbers and switches get number boxes and checkboxes; tuples are typed `a, b`, dicts `a=0.8, b=0.2`,
    and an empty box means None where None is allowed. A value that does not parse is shown in red and not applied.
    `fields` limits (and orders) the fields shown. The returned box has `.fields` ({name: widget}).
    """
    import ipywidgets as W

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
        common = {"layout": W.Layout(width="330px")}
        if spec.kind == "bool" and not spec.optional:
            w = W.Checkbox(value=bool(value), indent=False, **common)
        elif spec.kind == "int" and not spec.optional:
            w = W.IntText(value=int(value), **common)
        elif spec.kind == "float" and not spec.optional:
            w = W.FloatText(value=float(value), **common)
        else:
            w = W.Text(value=format_value(spec, value), placeholder="None" if spec.optional else "",
                       disabled=spec.kind == "other", continuous_update=False, **common)
        w.observe(_setter(cfg, spec, status), names="value")
        widgets[name] = w
        rows.append(W.HBox([W.Label(name, layout=label_layout, tooltip=spec.help), w,
                            W.HTML(f"<span style='color:#777;font-size:smaller'>{spec.help}</span>")]))
    head = [W.HTML(f"<b>{title}</b>")] if title else []
    box = W.VBox(head + rows + [status])
    box.fields = widgets
    return box


def _setter(cfg, spec, status):
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
