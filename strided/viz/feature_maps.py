"""Feature maps: the convolution seen at work on one image.

The model runs once on a single image and the output of every ``Conv2d``
(optionally of the activation that follows it) is kept as it goes by, read
by forward hooks, so convolutions inside any container (``Sequential``,
``Residual``, ``Concat``, your own modules) are seen in the order they run.
Each channel of such an output is an image: how strongly one filter
responded at every position. Tiled side by side after the input, they show
what each layer extracts: edges and strokes first, coarser parts later.
"""
from __future__ import annotations

import numpy as np

from . import _mpl


def _calls(model, x, kinds) -> list[tuple[str, object, np.ndarray]]:
    """Run ``model`` on x; return (name, module, output of the first example) for each call of a module of ``kinds``.

    In call order; a module called twice appears twice. Outputs are copied as
    they come (an in-place layer further on cannot change them).
    """
    calls = []
    names = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, kinds):
            names[id(m)] = name
            handles.append(m.register_forward_hook(
                lambda mod, args, out: calls.append((names[id(mod)], mod, np.array(out[0], copy=True)))))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return calls


def feature_maps(model, image, *, after_activation: bool = False) -> list[tuple[str, np.ndarray]]:
    """Run ``model`` on one image and return ``[(layer name, activation (C, H, W)), ...]``.

    model: any strided Module with Conv2d layers (nested in containers too);
    image: (C, H, W). One entry per call of a ``Conv2d``, in the order they
    run: its output or, with ``after_activation``, the output of the first
    activation layer that runs after it before the next convolution (when
    there is one). The model runs in eval mode (restored afterwards). The
    input keeps the model's dtype.
    """
    from ..nn import Conv2d, Gaussian, LeakyReLU, Module, ReLU, Sigmoid, Tanh

    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided.nn.Module, got {type(model).__name__}")
    x = _mpl.real_array("image", image, (3,), "(C, H, W)")
    first = next((m for m in model.modules() if isinstance(m, Conv2d)), None)
    if first is None:
        raise ValueError("model has no Conv2d layer: there are no feature maps to show")
    if x.shape[0] != first.in_channels:
        raise ValueError(f"image must have {first.in_channels} channels for this model (C, H, W), "
                         f"got shape {tuple(x.shape)}")
    activations = (ReLU, LeakyReLU, Sigmoid, Tanh, Gaussian)
    was_training = model.training
    model.eval()
    try:
        calls = _calls(model, x[None].astype(model.dtype), (Conv2d, *activations))
    finally:
        model.train(was_training)
    conv_at = [i for i, (_, m, _) in enumerate(calls) if isinstance(m, Conv2d)]
    out = []
    for n, i in enumerate(conv_at):
        at = i
        if after_activation:  # the first activation before the next conv (past batch norm or pooling)
            stop = conv_at[n + 1] if n + 1 < len(conv_at) else len(calls)
            at = next((j for j in range(i + 1, stop) if isinstance(calls[j][1], activations)), i)
        conv_name = f"Conv2d {calls[i][0]}".rstrip()
        label = conv_name if at == i else f"{conv_name} … {type(calls[at][1]).__name__} {calls[at][0]}"
        out.append((label, calls[at][2]))
    return out


def plot_feature_maps(model, image, path, *, after_activation: bool = False, max_channels: int | None = 64,
                      title: str | None = None, figsize=None, dpi: float = 100):
    """Draw one input image followed by the activations of each conv layer, all channels tiled.

    model: a ``strided.nn.Module`` with at least one ``Conv2d``; image: (C, H, W)
    (as the model expects it, e.g. standardised). Each layer gets its own
    colour scale and colour bar (activations of different layers have
    different ranges). ``max_channels`` caps the tiles per layer (None: all).
    Writes the figure to ``path`` and returns it.
    """
    if max_channels is not None and (isinstance(max_channels, bool) or not isinstance(max_channels, int)
                                     or max_channels < 1):
        raise ValueError(f"max_channels must be a positive int or None, got {max_channels!r}")
    path = _mpl.check_path(path)
    dpi = _mpl.check_dpi(dpi)
    maps = feature_maps(model, image, after_activation=after_activation)
    img = np.asarray(image)

    panels = []  # (kind, data, title, width/height)
    shown_img, img_cmap = _mpl.display_image(img.astype(np.float64))
    panels.append(("input", shown_img, img_cmap, f"input image\n{img.shape[0]}×{img.shape[1]}×{img.shape[2]}",
                   img.shape[2] / img.shape[1]))
    for label, a in maps:
        c = a.shape[0] if max_channels is None else min(a.shape[0], max_channels)
        mosaic = _mpl.tile(a[:c].astype(np.float64))
        more = f", first {c} shown" if c < a.shape[0] else ""
        what = f"{label}\n{_mpl.count(a.shape[0], 'channel')} of {a.shape[1]}×{a.shape[2]}{more}"
        panels.append(("maps", mosaic, "viridis", what, mosaic.shape[1] / mosaic.shape[0]))
    ratios = [max(0.6, p[4]) for p in panels]
    panel_h = 3.2
    figsize = _mpl.check_figsize(figsize, (panel_h * sum(ratios) + 0.9 * len(panels), panel_h + 1.6))

    fig = _mpl.new_figure(figsize, dpi)
    axes = fig.subplots(1, len(panels), squeeze=False, width_ratios=ratios)[0]
    for ax, (kind, data, cmap, label, _) in zip(axes, panels):
        kwargs = {} if cmap is None else {"cmap": _mpl.colormap(cmap)}
        im = ax.imshow(data, interpolation="nearest", **kwargs)
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if kind == "input":
            ax.set_xlabel("width")
            ax.set_ylabel("height")
            if cmap is not None:
                fig.colorbar(im, ax=ax, orientation="horizontal", shrink=0.9, label="pixel value")
        else:
            ax.set_xlabel("one tile per channel (filter)")
            fig.colorbar(im, ax=ax, orientation="horizontal", shrink=0.9, label="activation")
    if title is None:
        title = "Feature maps: the input and what each conv layer computes from it"
    fig.suptitle(title)
    return _mpl.save(fig, path, dpi)
