"""A trained run used on new images: strided.predict / `strided predict`, `strided summary`, the ONNX metadata.

Ground truth: the trained model evaluated directly on the standardised dataset images the files were written from.
"""
import json
import sys

import numpy as np
import pytest

import strided
from strided import cli, data, io
from strided.functional import softmax
from strided.inference import Classifier, read_image

from _fake_datasets import fake_idx_dataset

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny finished run of lenet5 on a Fashion-MNIST-shaped dataset, and that dataset's test split."""
    root = tmp_path_factory.mktemp("data")
    fake_idx_dataset(root / "fashion-mnist", n_train=60, n_test=20)
    run_dir = tmp_path_factory.mktemp("runs") / "lenet5"
    assert cli.main(["train", "--data-root", str(root), "--run-dir", str(run_dir), "--epochs", "2",
                     "--batch-size", "16", "--quiet", "--no-plots"]) == 0
    return run_dir, data.load_dataset("fashion-mnist", root=root).test


def _expected(run_dir, images):
    """The run's model on images standardised with the run's statistics: (labels, probabilities)."""
    cfg = json.loads((run_dir / "config.json").read_text())
    model = io.load(run_dir / "model.npz").eval()
    logits = model(data.Standardize.from_state_dict(cfg["standardize"])(images))
    return logits.argmax(1), softmax(logits.astype(np.float64), axis=1)


def _write(images, directory):
    files = []
    for i, img in enumerate(images):
        if i % 3 == 2:
            files.append(directory / f"img{i}.npy")
            np.save(files[-1], img)
        else:
            files.append(directory / f"img{i}.png")
            Image.fromarray(img[0]).save(files[-1])
    return files


def test_predict_on_saved_images_gives_the_evaluated_labels(run, tmp_path):
    run_dir, test = run
    images = test.images[:9]
    files = _write(images, tmp_path)
    labels, probabilities = _expected(run_dir, images)
    p = strided.predict(run_dir, files)
    np.testing.assert_array_equal(p.labels, labels)
    np.testing.assert_allclose(p.probabilities, probabilities, rtol=1e-5, atol=1e-7)
    assert p.class_names == list(data.dataset_info("fashion-mnist").classes)
    assert p.sources == [str(f) for f in files]
    # the same through an array of raw pixels
    np.testing.assert_array_equal(strided.predict(run_dir, images).labels, labels)


def test_cli_predict_prints_the_top_classes(run, tmp_path, capsys):
    run_dir, test = run
    files = _write(test.images[:4], tmp_path)
    labels, probabilities = _expected(run_dir, test.images[:4])
    names = data.dataset_info("fashion-mnist").classes
    assert cli.main(["predict", str(run_dir), *map(str, files), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for line, f, label, prob in zip(lines, files, labels, probabilities):
        first = line.split(": ", 1)[1].split(", ")
        assert line.startswith(f"{f}: ") and len(first) == 3
        assert first[0] == f"{names[label]} {prob[label]:.3f}"


def test_rgb_image_for_a_grayscale_model(run, tmp_path):
    run_dir, test = run
    gray = test.images[:2]
    files = []
    for i, img in enumerate(gray):
        files.append(tmp_path / f"rgb{i}.png")
        Image.fromarray(np.repeat(img[0][..., None], 3, axis=2)).save(files[-1])
    assert read_image(files[0]).shape == (3, 28, 28)
    p = strided.predict(run_dir, files)
    labels, probabilities = _expected(run_dir, gray)
    np.testing.assert_array_equal(p.labels, labels)
    np.testing.assert_allclose(p.probabilities, probabilities, rtol=1e-5, atol=1e-7)


def test_grayscale_image_for_an_rgb_model():
    model = strided.models.cifar_cnn()
    clf = Classifier(model, input_shape=(3, 32, 32))
    gray = np.random.default_rng(0).integers(0, 256, (2, 1, 32, 32), dtype=np.uint8)
    np.testing.assert_array_equal(clf.predict(gray).probabilities,
                                  clf.predict(np.repeat(gray, 3, axis=1)).probabilities)


def test_an_image_of_another_size_is_an_error_naming_it(run, tmp_path, capsys):
    run_dir, _ = run
    f = tmp_path / "big.png"
    Image.fromarray(np.zeros((32, 30), np.uint8)).save(f)
    with pytest.raises(ValueError, match=r"big.png: the image is 32x30 pixels but the model takes 28x28 images"):
        strided.predict(run_dir, [f])
    assert cli.main(["predict", str(run_dir), str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "big.png" in err[0]


def test_missing_files_and_runs(run, tmp_path):
    run_dir, _ = run
    with pytest.raises(FileNotFoundError, match="no image file"):
        strided.predict(run_dir, [tmp_path / "nope.png"])
    with pytest.raises(FileNotFoundError, match="model.npz is missing"):
        strided.predict(tmp_path, [tmp_path / "nope.png"])


def test_reading_png_without_pillow_says_how_to_install_it(tmp_path, monkeypatch):
    f = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(f)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r"pip install strided\[images\]"):
        read_image(f)


def test_top_k_and_binary_outputs():
    p = strided.Predictions(np.array([[0.1, 0.7, 0.2]]), ["a", "b", "c"], ["x"])
    assert p.top(2) == [[("b", 0.7), ("c", 0.2)]]
    assert p.format(5) == "x: b 0.700, c 0.200, a 0.100"
    model = strided.models.two_class_net()
    x = np.random.default_rng(1).integers(0, 256, (3, 1, 28, 28)).astype(np.float32)
    q = strided.predict(model, x)
    prob1 = model.eval()(x).reshape(3)
    np.testing.assert_allclose(q.probabilities[:, 1], prob1, rtol=1e-6)
    np.testing.assert_allclose(q.probabilities.sum(1), 1, rtol=1e-12)


def test_cli_summary_of_a_run(run, capsys):
    run_dir, _ = run
    assert cli.main(["summary", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "Total params: 61,706" in out and "(1, 6, 28, 28)" in out
    assert cli.main(["summary", str(run_dir), "--batch-size", "0"]) == 2


def test_exported_onnx_carries_class_names_and_standardisation(run, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    run_dir, test = run
    out = tmp_path / "model.onnx"
    assert cli.main(["export", str(run_dir / "model.npz"), str(out)]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    cfg = json.loads((run_dir / "config.json").read_text())
    assert json.loads(props["class_names"]) == cfg["class_names"]
    assert json.loads(props["mean"]) == cfg["standardize"]["mean"]
    assert json.loads(props["std"]) == cfg["standardize"]["std"]
    # the metadata is enough to use the graph: standardise with it, and the labels are the run's
    mean, std = np.array(json.loads(props["mean"]), np.float32), np.array(json.loads(props["std"]), np.float32)
    eps = float(props["eps"])
    x = ((test.images[:6] - mean[:, None, None]) / (std[:, None, None] + np.float32(eps))).astype(np.float32)
    logits = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
    np.testing.assert_array_equal(logits.argmax(1), _expected(run_dir, test.images[:6])[0])


def test_export_onnx_metadata_must_be_a_dict_of_str_keys(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(TypeError, match="metadata must be a dict with str keys"):
        io.export_onnx(strided.models.lenet5(), tmp_path / "m.onnx", (1, 28, 28), metadata={1: "x"})
    assert not (tmp_path / "m.onnx").exists()


def test_a_model_file_without_metadata(tmp_path, capsys):
    """No standardisation recorded: the pixels go in as they are, the classes are numbered, and the CLI says so."""
    model = strided.models.lenet5()
    strided.save(model, tmp_path / "m.npz", input_shape=(1, 28, 28))
    x = np.random.default_rng(2).integers(0, 256, (1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = strided.predict(tmp_path / "m.npz", [tmp_path / "x.npy"])
    np.testing.assert_allclose(p.probabilities[0], softmax(model.eval()(x[None]).astype(np.float64), axis=1)[0],
                               rtol=1e-6)
    assert p.class_names == [str(i) for i in range(10)]
    assert cli.main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "x.npy")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{tmp_path / 'x.npy'}: {p.labels[0]} ") and "records no standardisation" in err
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\)"):
        Classifier(model, input_shape=(28, 28))
