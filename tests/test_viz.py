"""strided.viz: every figure is written headless, at the requested pixel size, and is not blank.

The data behind the teaching figures is checked against ground truth: the
im2col layout against explicit loops over the windows, the feature maps
against running the model's layers directly.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import strided
from strided import nn, viz

if os.environ.get("STRIDED_REQUIRE_TORCH") == "1":  # CI installs every optional extra: never skip there
    import matplotlib  # noqa: F401
    import matplotlib.image as mpimg
else:
    pytest.importorskip("matplotlib", reason="plotting needs matplotlib: pip install strided[viz]")
    import matplotlib.image as mpimg

NAMES = ["cat", "dog", "bird"]
VARIANCE_FLOOR = 1e-3   # an all-white (or any single-colour) image has variance 0


def read_png(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4), img.shape
    return img


def assert_figure(path, size=None):
    """The PNG exists, has ``size`` = (height, width) pixels when given, and is not blank."""
    img = read_png(path)
    if size is not None:
        assert img.shape[:2] == size
    rgb = img[..., :3]
    assert rgb.var() > VARIANCE_FLOOR, f"{path} looks blank (variance {rgb.var():.2e})"
    assert (rgb.min(axis=2) < 0.9).mean() > 0.01, f"{path} is almost all white"


def small_cnn(dtype=np.float32):
    strided.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, dtype=dtype), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 3, dtype=dtype),
    )


def dense_only():
    strided.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


def history(epochs=4, val=True, lr=(0.1, 0.1, 0.01, 0.01)):
    h = {"epoch": list(range(1, epochs + 1)),
         "train_loss": list(np.linspace(1.5, 0.4, epochs)), "train_acc": list(np.linspace(0.4, 0.9, epochs))}
    if val:
        h["val_loss"] = list(np.linspace(1.3, 0.6, epochs))
        h["val_acc"] = list(np.linspace(0.5, 0.8, epochs))
    if lr is not None:
        h["lr"] = list(lr[:epochs])
    return h


@pytest.fixture
def images(rng):
    return rng.standard_normal((12, 1, 8, 8)).astype(np.float32)


# ----------------------------------------------------------------------------- every plot function
def _plots(rng, images):
    model = small_cnn()
    w = model[0].weight.data
    confusion = rng.integers(0, 20, (3, 3)) + np.diag([50, 40, 30])
    pred = rng.integers(0, 3, 12)
    true = pred.copy()
    true[::4] = (true[::4] + 1) % 3
    return {
        "curves": lambda p, **kw: viz.plot_curves(history(), p, **kw),
        "filters": lambda p, **kw: viz.plot_filters(w + 0.3, p, w, **kw),
        "feature_maps": lambda p, **kw: viz.plot_feature_maps(model, images[0], p, **kw),
        "confusion": lambda p, **kw: viz.plot_confusion(confusion, NAMES, p, **kw),
        "predictions": lambda p, **kw: viz.plot_predictions(images, pred, true, NAMES, p, **kw),
        "im2col": lambda p, **kw: viz.plot_im2col(p, **kw),
    }


@pytest.mark.parametrize("name", ["curves", "filters", "feature_maps", "confusion", "predictions", "im2col"])
def test_plot_writes_png_of_requested_size(name, rng, images, tmp_path):
    plot = _plots(rng, images)[name]
    path = tmp_path / f"{name}.png"
    assert plot(path, figsize=(6, 4), dpi=50) == path
    assert_figure(path, size=(200, 300))
    # default size: still a real figure, and nothing but the PNG is left in the directory
    default = tmp_path / "sub" / f"{name}_default.png"
    plot(default)
    assert_figure(default)
    assert sorted(p.name for p in default.parent.iterdir()) == [default.name]


def test_drawing_needs_no_display_and_leaves_pyplot_alone(tmp_path):
    # a GUI backend and no display: a figure drawn through pyplot would fail or open a window
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"
    code = (
        "import sys; from strided import viz;"
        f"viz.plot_curves({{'epoch': [1, 2], 'train_loss': [1.0, 0.5]}}, {str(tmp_path / 'c.png')!r});"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_figure(tmp_path / "c.png")


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ImportError, match=r"pip install strided\[viz\]"):
        viz.plot_curves(history(), tmp_path / "c.png")
    messages = []
    assert viz.plot_training(tmp_path, history(), small_cnn(), log=messages.append) == []
    assert any("pip install strided[viz]" in m for m in messages)
    assert not list(tmp_path.iterdir())


def test_failed_render_keeps_previous_file(monkeypatch, tmp_path):
    from matplotlib.figure import Figure

    path = viz.plot_curves(history(), tmp_path / "c.png")
    before = path.read_bytes()

    def broken(self, f, **kwargs):
        f.write(b"half a PNG")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        viz.plot_curves(history(epochs=2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]


# ----------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize("kwargs, match", [
    ({"path": "curves.txt"}, "image suffix"),
    ({"path": 3}, "path must be a str"),
    ({"dpi": 0}, "dpi must be"),
    ({"figsize": (4,)}, "figsize must be"),
    ({"figsize": (-1, 3)}, "figsize must be"),
])
def test_bad_output_arguments(kwargs, match, tmp_path):
    args = {"path": tmp_path / "c.png", **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        viz.plot_curves(history(), args.pop("path"), **args)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("h, match", [
    ({"epoch": [1, 2]}, "train_loss"),
    ([1, 2], "history must be a dict"),
    ({"epoch": [1, 2], "train_loss": [1.0]}, r"history\['train_loss'\] has 1 values"),
    ({"epoch": [1], "train_loss": ["a"]}, "must be a number"),
])
def test_bad_history(h, match, tmp_path):
    with pytest.raises((ValueError, TypeError), match=match):
        viz.plot_curves(h, tmp_path / "c.png")


def test_curves_panels_follow_the_data(tmp_path):
    # one panel more (wider figure) exactly when a scheduler changed the learning rate
    widths = {}
    for name, h in {"constant_lr": history(lr=(0.1,) * 4), "scheduled": history(),
                    "no_val": history(val=False), "val_none": {**history(), "val_loss": [None] * 4,
                                                                "val_acc": []}}.items():
        widths[name] = read_png(viz.plot_curves(h, tmp_path / f"{name}.png", dpi=50)).shape[1]
    assert widths["scheduled"] > widths["constant_lr"]
    assert widths["no_val"] == widths["val_none"] == widths["scheduled"]


def test_confusion_checks(tmp_path):
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion(np.ones((2, 3), int), None, tmp_path / "c.png")
    with pytest.raises(ValueError, match="class_names must have 2 entries"):
        viz.plot_confusion(np.ones((2, 2), int), NAMES, tmp_path / "c.png")
    with pytest.raises(ValueError, match="non-negative whole counts"):
        viz.plot_confusion([[1, -1], [0, 2]], None, tmp_path / "c.png")
    # a class with no test image (an empty row) still draws
    assert_figure(viz.plot_confusion([[5, 1, 0], [0, 0, 0], [2, 0, 7]], NAMES, tmp_path / "c.png", dpi=40))


def test_prediction_checks(images, tmp_path):
    with pytest.raises(ValueError, match=r"predicted must have shape \(12,\)"):
        viz.plot_predictions(images, np.zeros(3, int), np.zeros(12, int), NAMES, tmp_path / "p.png")
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        viz.plot_predictions(images, np.full(12, 3), np.zeros(12, int), NAMES, tmp_path / "p.png")
    with pytest.raises(ValueError, match="1 or 3 channels"):
        viz.plot_predictions(images.reshape(12, 2, 4, 8), np.zeros(12, int), np.zeros(12, int), NAMES,
                             tmp_path / "p.png")
    rgb = np.random.default_rng(1).random((5, 3, 8, 8))
    assert_figure(viz.plot_predictions(rgb, np.arange(5) % 3, np.zeros(5, int), NAMES, tmp_path / "p.png", dpi=40))


def test_pick_examples_shows_mistakes_and_correct_answers(rng):
    true = rng.integers(0, 3, 200)
    pred = true.copy()
    wrong = rng.choice(200, 30, replace=False)
    pred[wrong] = (pred[wrong] + 1) % 3
    pick = viz.pick_examples(pred, true, 24)
    assert len(pick) == 24 and np.all(np.diff(pick) > 0)
    assert (pred[pick] != true[pick]).sum() == 12
    # fewer mistakes than half: all of them, the rest correct
    pick = viz.pick_examples(pred[:20], true[:20], 24)
    assert len(pick) == 20 and set(pick) == set(range(20))
    perfect = viz.pick_examples(true, true, 10)
    assert list(perfect) == list(range(10))


# ----------------------------------------------------------------------------- filters
def test_find_first_conv_walks_nested_models():
    inner = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())
    model = nn.Sequential(nn.Identity(), inner, nn.Conv2d(3, 4, 1))
    assert viz.find_first_conv(model) is inner[0]
    assert viz.find_first_conv(dense_only()) is None
    with pytest.raises(TypeError, match="strided Module"):
        viz.find_first_conv("model")


def test_filters_of_colour_input_and_shape_checks(tmp_path):
    conv = nn.Conv2d(3, 5, 3)
    assert_figure(viz.plot_filters(conv, tmp_path / "f.png", dpi=40))
    with pytest.raises(ValueError, match="weights_before must have the shape"):
        viz.plot_filters(conv.weight.data, tmp_path / "f.png", np.zeros((5, 3, 2, 2)))
    with pytest.raises(ValueError, match="without a Conv2d"):
        viz.plot_filters(dense_only(), tmp_path / "f.png")
    with pytest.raises(ValueError, match="4 dimensions"):
        viz.plot_filters(np.zeros((5, 3, 3)), tmp_path / "f.png")


# ----------------------------------------------------------------------------- feature maps
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feature_maps_are_the_conv_outputs(dtype, images):
    model = small_cnn(dtype).train()
    x = images[:1].astype(dtype)
    maps = viz.feature_maps(model, images[0])
    assert [name for name, _ in maps] == ["Conv2d 0", "Conv2d 3"]
    np.testing.assert_array_equal(maps[0][1], model[0](x)[0])
    np.testing.assert_array_equal(maps[1][1], model[:4](x)[0])
    assert maps[0][1].dtype == dtype
    after = viz.feature_maps(model, images[0], after_activation=True)
    np.testing.assert_array_equal(after[0][1], model[:2](x)[0])
    np.testing.assert_array_equal(after[1][1], model[:5](x)[0])
    assert model.training  # the mode is restored


def test_feature_maps_run_in_eval_mode(images):
    # batch norm on one image only works with running statistics (eval mode)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten())
    model[1].running_mean[...] = [0.5, -0.5]
    maps = viz.feature_maps(model, images[0], after_activation=True)
    model.eval()
    np.testing.assert_array_equal(maps[0][1], model(images[:1]).reshape(2, 6, 6))


def test_feature_map_checks(images, tmp_path):
    with pytest.raises(ValueError, match="no Conv2d"):
        viz.feature_maps(dense_only(), images[0])
    with pytest.raises(ValueError, match="1 channels"):
        viz.feature_maps(small_cnn(), np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match=r"3 dimensions \(C, H, W\)"):
        viz.feature_maps(small_cnn(), images[:1])
    with pytest.raises(TypeError, match="model must be a strided.nn.Module, got str"):
        viz.feature_maps("model", images[0])


def test_feature_maps_inside_residual_and_concat(images):
    """Convolutions inside containers are seen in the order they run, a reused one at every call."""
    relu = nn.ReLU()
    conv = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), relu,
                          nn.Residual(nn.Sequential(conv, nn.BatchNorm2d(2), relu, conv), nn.Conv2d(2, 2, 1)), relu,
                          nn.Concat(nn.Conv2d(2, 1, 1), nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Tanh())))
    x = images[:1].astype(np.float32)
    maps = viz.feature_maps(model, images[0])
    assert [name for name, _ in maps] == ["Conv2d 0", "Conv2d 2.body.0", "Conv2d 2.body.0", "Conv2d 2.shortcut",
                                          "Conv2d 4.0"]
    model.eval()
    h = model[:2](x)
    np.testing.assert_array_equal(maps[1][1], conv(h)[0])
    np.testing.assert_array_equal(maps[2][1], model[2].body(h)[0])
    np.testing.assert_array_equal(maps[3][1], model[2].shortcut(h)[0])
    np.testing.assert_array_equal(maps[4][1], model[4][0](model[:4](x))[0])
    after = viz.feature_maps(model, images[0], after_activation=True)
    assert [name for name, _ in after][1:4] == ["Conv2d 2.body.0 … ReLU 1", "Conv2d 2.body.0",
                                                 "Conv2d 2.shortcut … ReLU 1"]
    np.testing.assert_array_equal(after[3][1], model[:4](x)[0])  # the ReLU after the sum
    single = viz.feature_maps(nn.Conv2d(1, 2, 3), images[0])
    assert [name for name, _ in single] == ["Conv2d"]


# ----------------------------------------------------------------------------- im2col figure data
@pytest.mark.parametrize("size, stride, padding", [(5, 1, 0), (5, 2, 0), (4, 1, 1), (4, 2, 1), (6, 3, 2)])
def test_im2col_layout_matches_explicit_windows(size, stride, padding, rng):
    kernel = rng.integers(-2, 3, (3, 3))
    lay = viz.im2col_layout(size, kernel, stride, padding)
    image = np.arange(1, size * size + 1).reshape(size, size)
    padded = np.zeros((size + 2 * padding,) * 2)
    padded[padding:padding + size, padding:padding + size] = image
    out = (padded.shape[0] - 3) // stride + 1
    np.testing.assert_array_equal(lay["image"], image)
    np.testing.assert_array_equal(lay["padded"], padded)
    assert lay["cols"].shape == (9, out * out)
    assert lay["output"].shape == (out, out)
    for i in range(out):
        for j in range(out):
            window = padded[i * stride:i * stride + 3, j * stride:j * stride + 3]
            np.testing.assert_array_equal(lay["cols"][:, i * out + j], window.ravel())
            assert lay["output"][i, j] == (window * kernel).sum()


def test_im2col_checks(tmp_path):
    with pytest.raises(ValueError, match="size must be an int from 1 to 9"):
        viz.im2col_layout(20)
    with pytest.raises(ValueError, match="larger than the padded input"):
        viz.im2col_layout(2)
    with pytest.raises(ValueError, match="strides must be"):
        viz.plot_im2col(tmp_path / "i.png", strides=())
    assert_figure(viz.plot_im2col(tmp_path / "i.png", size=4, padding=1, strides=(1, 2, 3), dpi=40))


# ----------------------------------------------------------------------------- whole runs
ALL_FIGURES = ["curves.png", "filters.png", "confusion.png", "feature_maps.png", "predictions.png", "im2col.png"]


def fake_run(path, model, rng, *, dataset="no-such-dataset", save_model=True):
    """A run directory as `strided train` writes it, for a model on 8x8 one-channel images of 3 classes."""
    path.mkdir()
    initial = small_cnn() if any(isinstance(m, nn.Conv2d) for m in model.modules()) else dense_only()
    confusion = (rng.integers(0, 5, (3, 3)) + np.diag([30, 25, 20])).tolist()
    files = {
        "config.json": {"model": "tiny", "dataset": dataset, "classes": None, "seed": 0, "epochs": 3,
                        "class_names": NAMES},
        "history.json": history(epochs=3, lr=(0.1, 0.05, 0.01)),
        "metrics.json": {"test_accuracy": 0.75, "test_loss": 0.61, "per_class_accuracy": [0.8, 0.7, 0.6],
                         "confusion": confusion, "class_names": NAMES},
    }
    for name, obj in files.items():
        (path / name).write_text(json.dumps(obj))
    if save_model:
        strided.io.save(model, path / "model.npz")
        strided.io.save(initial, path / "model_initial.npz")
    return path


def test_plot_run_writes_every_figure_and_the_report(rng, images, tmp_path):
    model = small_cnn()
    run = fake_run(tmp_path / "run", model, rng)
    messages = []
    labels = rng.integers(0, 3, len(images))
    written = viz.plot_run(run, images, labels, log=messages.append, dpi=40)
    assert sorted(p.name for p in written) == sorted(ALL_FIGURES + ["report.md"])
    for name in ALL_FIGURES:
        assert_figure(run / name)
    report = (run / "report.md").read_text()
    assert "75.00%" in report and "0.61" in report
    for name in ALL_FIGURES:
        assert f"]({name})" in report
    for cls, acc in zip(NAMES, ("80.00%", "70.00%", "60.00%")):
        assert f"| {cls} | {acc} |" in report
    assert not [m for m in messages if "skipping" in m]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_plot_run_without_conv_layers_skips_filter_plots(rng, images, tmp_path):
    run = fake_run(tmp_path / "run", dense_only(), rng)
    messages = []
    written = viz.plot_run(run, images, rng.integers(0, 3, len(images)), log=messages.append, dpi=40)
    names = {p.name for p in written}
    assert "filters.png" not in names and "feature_maps.png" not in names
    assert {"curves.png", "confusion.png", "predictions.png", "report.md"} <= names
    assert not (run / "filters.png").exists()
    assert any("no Conv2d" in m and "skipping the filter" in m for m in messages)
    assert "no Conv2d" in (run / "report.md").read_text()


def test_plot_run_skips_image_figures_when_the_dataset_cannot_load(rng, tmp_path):
    run = fake_run(tmp_path / "run", small_cnn(), rng, dataset="no-such-dataset")
    messages = []
    written = {p.name for p in viz.plot_run(run, log=messages.append, dpi=40)}
    assert {"curves.png", "filters.png", "confusion.png", "im2col.png", "report.md"} <= written
    assert "predictions.png" not in written and "feature_maps.png" not in written
    assert any("no-such-dataset" in m and "skipping the image figures" in m for m in messages)


def test_plot_run_with_a_model_object_and_missing_files(rng, images, tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    messages = []
    written = {p.name for p in viz.plot_run(run, images, rng.integers(0, 3, len(images)), model=small_cnn(),
                                            log=messages.append, dpi=40)}
    assert written == {"filters.png", "feature_maps.png", "predictions.png", "im2col.png", "report.md"}
    assert any("history.json not found" in m for m in messages)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        viz.plot_run(tmp_path / "nowhere")


def test_plot_training_writes_curves_and_filters(tmp_path):
    model, initial = small_cnn(), small_cnn()
    model[0].weight.data += 0.5
    written = viz.plot_training(tmp_path, history(), model, initial, dpi=40)
    assert [p.name for p in written] == ["curves.png", "filters.png"]
    for p in written:
        assert_figure(p)
    messages = []
    assert [p.name for p in viz.plot_training(tmp_path / "d", history(), dense_only(), log=messages.append,
                                               dpi=40)] == ["curves.png"]
    assert messages == ["the model has no Conv2d layer: no filter plot"]


def test_figure_callback_compares_with_the_weights_training_started_from(rng, tmp_path):
    from strided import io, optim
    from strided.train import fit

    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 16)

    def train(model, run_dir, epochs, **kwargs):
        cb = viz.FigureCallback(dpi=40)
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5), (x, y), epochs=epochs,
            batch_size=8, run_dir=run_dir, callbacks=[cb], progress=False, log=lambda m: None, **kwargs)
        return cb

    model, start = small_cnn(), small_cnn()
    cb = train(model, tmp_path / "a", 1)
    assert np.array_equal(cb.initial, start[0].weight.data)
    assert not np.array_equal(model[0].weight.data, start[0].weight.data)
    assert {"curves.png", "filters.png"} <= {p.name for p in (tmp_path / "a").iterdir()}
    # on resume the "before" filters are the run's model_initial.npz, not the weights of the checkpoint
    io.save(start, tmp_path / "a" / "model_initial.npz")
    assert np.array_equal(train(small_cnn(), tmp_path / "a", 2, resume=tmp_path / "a").initial, start[0].weight.data)
    (tmp_path / "a" / "model_initial.npz").unlink()
    assert train(small_cnn(), tmp_path / "a", 3, resume=tmp_path / "a").initial is None
    with pytest.raises(ValueError, match="FigureCallback draws into fit's run directory"):
        train(small_cnn(), None, 1)


def test_strided_plot_command(rng, tmp_path, capsys):
    from strided.cli import main

    run = fake_run(tmp_path / "run", small_cnn(), rng)
    assert main(["plot", str(run)]) == 0
    out = capsys.readouterr().out
    for name in ["curves.png", "filters.png", "confusion.png", "im2col.png", "report.md"]:
        assert (run / name).exists() and name in out
    from strided.viz.__main__ import main as viz_main

    assert viz_main([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
