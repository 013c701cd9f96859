"""The markdown report: the key numbers, the params used, and the figures."""
from __future__ import annotations

from .metrics import SATURATED_OUTSIDE, SATURATED_SHARE


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def render(params: dict, train: dict, evaluation: dict, data_meta: dict | None, figures: dict[str, str],
           notes: dict[str, str] | None = None) -> str:
    """Markdown for data/report/report.md; `figures` maps a caption to a path relative to it,
    `notes` a caption to the text under that figure."""
    lines = ["# zerodl training report", ""]
    src = (data_meta or {}).get("source", params.get("data", {}).get("source", "?"))
    model, tp = params["model"], params["train"]
    hidden = model.get("activation", "relu") + (f", dropout {model['dropout']}" if model.get("dropout") else "")
    cures = f", weight decay λ = {tp['weight_decay']}" if tp.get("weight_decay") else ""
    lines += [
        f"TwoLayerNet {model['hidden_size']} hidden units ({hidden}), "
        f"trained on **{src}** with {tp['optimizer']} "
        f"(learning rate {tp['learning_rate']}, batch {tp['batch_size']}{cures}, "
        f"{train['iterations']} iterations = {train['epochs']:g} epochs, "
        f"gradient by {tp.get('gradient', 'backprop')}, {tp['dtype']}).",
        "",
        "**[Draw a digit](draw.html)** and watch this network read it: one page that opens "
        "from disk in a browser, no server and no network.",
        "",
        "## Key numbers",
        "",
        "| | value |",
        "|---|---|",
        f"| test accuracy | {_pct(evaluation['accuracy'])} ({evaluation['errors']} of {evaluation['n']} wrong) |",
        f"| test loss | {evaluation['loss']:.4f} |",
        f"| train accuracy (last epoch) | {_pct(train['train_accuracy'])} |",
        f"| train loss (last epoch) | {train['train_loss']:.4f} |",
        "",
        "## Per class (test set)",
        "",
        "| class | support | precision | recall | F1 |",
        "|---|---|---|---|---|",
    ]
    for c in evaluation["per_class"]:
        lines.append(f"| {c['class']} | {c['support']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |")
    lines += ["", "## Figures", ""]
    for caption, rel in figures.items():
        lines += [f"### {caption}", "", f"![{caption}]({rel})", ""]
        if notes and caption in notes:
            lines += [notes[caption], ""]
    lines += ["## Params used", "", "```yaml"]
    lines += _yaml_lines(params)
    lines += ["```", ""]
    return "\n".join(lines)


def hidden_units_line(activation: str, flagged: int, units: int, digits: int,
                      outside=SATURATED_OUTSIDE, share: float = SATURATED_SHARE) -> str:
    """One sentence: how many hidden units are dead (ReLU) or saturated (sigmoid) on the test set."""
    verb = "is" if flagged == 1 else "are"
    if activation == "relu":
        return f"{flagged} of {units} hidden units {verb} dead: never active on any of the {digits:,} test digits."
    return (f"{flagged} of {units} hidden units {verb} saturated: outside {outside} "
            f"on at least {100 * share:g} % of the {digits:,} test digits.")


def _yaml_lines(d: dict, indent: int = 0) -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(" " * indent + f"{k}:")
            out += _yaml_lines(v, indent + 2)
        else:
            out.append(" " * indent + f"{k}: {'null' if v is None else v}")
    return out


# What to look for in each figure of what the network learned (report.md, under the figure).
FIGURE_NOTES = {
    "What each hidden unit looks for":
        "Each tile is one hidden unit's first-layer weights `W1[:, j]`, laid out as the input image: "
        "red pixels excite the unit, blue ones inhibit it, white ones it ignores (colours centred at 0). "
        "Look for strokes and blobs, the parts of digits a unit has learned to detect; "
        "faint tiles are units whose weights stayed small, near their random start.",
    "Weight and update norms per epoch":
        "Left, the size ||W|| of each parameter; right, the epoch's last update relative to it, ||ΔW|| / ||W||. "
        "A rule of thumb puts a good learning rate near 1e-3 (the dashed line): ratios that stay at 1e-2 or more "
        "mean steps too large for the weights (the loss jumps, ReLUs die); ratios far below 1e-3 from the start, "
        "too small a learning rate. The ratio falls as the training loss does; a gap is an epoch whose last update "
        "did not move that parameter at all.",
}
HIDDEN_NOTES = {
    "relu": "A ReLU that no digit activates gets no gradient and cannot recover: many of them point to too "
            "large a learning rate. On the left, the tall bar at 0 is every (digit, unit) pair where the unit is off.",
    "sigmoid": "A saturated sigmoid's slope is below 0.02, so it passes almost no gradient: many of them point to "
               "weights grown too large (try a smaller learning rate, xavier init or weight decay).",
}
