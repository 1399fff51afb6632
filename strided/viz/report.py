"""``report.md``: a run's settings, metrics and figures on one page (Markdown, viewable on GitHub or any editor)."""
from __future__ import annotations

import math
from pathlib import Path

FIGURE_TITLES = {
    "curves.png": "Training curves",
    "filters.png": "First-layer filters, before and after training",
    "feature_maps.png": "Feature maps of one test image",
    "confusion.png": "Confusion matrix",
    "predictions.png": "Test predictions",
    "im2col.png": "How im2col lays out the windows",
}
CONFIG_SKIP = ("standardize", "class_names")  # long lists, shown elsewhere in the report


def _fmt(v) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if v is None:
        return "–"
    return str(v).replace("|", "\\|")


def _pct(v) -> str:
    return "–" if v is None else f"{100 * float(v):.2f}%"


def render_report(title: str, *, config=None, history=None, metrics=None, figures=(), notes=()) -> str:
    """The Markdown text of a run report; every part is optional and left out when missing."""
    lines = [f"# {title}", ""]
    if config:
        what = [f"**{config[k]}**" for k in ("model", "dataset") if config.get(k)]
        if what:
            lines += [" on ".join(what) + (f", classes {_fmt(config['class_names'])}" if config.get("class_names")
                                             else ""), ""]
    if metrics:
        lines += ["## Test metrics", "", "| metric | value |", "|---|---|"]
        if "test_accuracy" in metrics:
            lines.append(f"| accuracy | {_pct(metrics['test_accuracy'])} |")
        if "test_loss" in metrics:
            lines.append(f"| loss | {_fmt(float(metrics['test_loss']))} |")
        confusion = metrics.get("confusion")
        if confusion:
            lines.append(f"| test images | {sum(map(sum, confusion))} |")
        lines.append("")
        per_class = metrics.get("per_class_accuracy")
        if per_class:
            names = metrics.get("class_names") or [str(i) for i in range(len(per_class))]
            lines += ["### Accuracy per class", "", "| class | accuracy |", "|---|---|"]
            lines += [f"| {_fmt(n)} | {_pct(a)} |" for n, a in zip(names, per_class)]
            lines.append("")
    if history and history.get("epoch"):
        keys = [k for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
                if any(v is not None for v in history.get(k) or [])]
        lines += ["## Training, per epoch", "", "| epoch | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]
        for i, epoch in enumerate(history["epoch"]):
            cells = []
            for k in keys:
                v = history[k][i] if i < len(history[k]) else None
                cells.append(_pct(v) if k.endswith("acc") and v is not None else _fmt(v))
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for name in figures:
            lines += [f"### {FIGURE_TITLES.get(name, name)}", "", f"![{FIGURE_TITLES.get(name, name)}]({name})", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if config:
        lines += ["## Settings (config.json)", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {'all' if k == 'classes' and v is None else _fmt(v)} |"
                  for k, v in config.items() if k not in CONFIG_SKIP]
        lines.append("")
    return "\n".join(lines)


def write_report(path, title: str, **parts) -> Path:
    """Write :func:`render_report` to ``path`` atomically; returns the path."""
    from ..io.atomic import write_text_atomic

    return write_text_atomic(Path(path), render_report(title, **parts))
