"""Datasets and loaders as torch's: Dataset, ArrayDataset, DataLoader, ImageFolder, Compose, and what fit does with them."""
import json
import math

import numpy as np
import pytest

import strided
from strided import data, nn, optim
from strided.train import evaluate, fit


def quiet(*_):
    pass


def quadrants(n=100, seed=0):
    """uint8 (n, 1, 8, 8) images, 4 classes: which quadrant is bright (values 100..255, never 0)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.integers(100, 140, (n, 1, 8, 8)).astype(np.uint8)
    for k, (r, c) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        x[y == k, :, r:r + 4, c:c + 4] = 255
    return x, y


def small_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 4))


class CountingSGD(optim.SGD):
    """SGD that counts its steps."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def step(self):
        self.steps += 1
        super().step()


def record_inputs(model):
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append(args[0].copy()))
    return seen


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- fit uses a loader as configured


def test_fit_with_a_data_loader_takes_its_batches_standardised_in_its_order():
    strided.manual_seed(0)
    x, y = quadrants(100)
    std = data.Standardize().fit(x)
    loader = data.DataLoader(data.ArrayDataset(x, y), batch_size=32, shuffle=True, transform=std, seed=4)
    model = small_net()
    opt = CountingSGD(model.parameters(), lr=0.05)
    seen = record_inputs(model)
    fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=2, progress=False, log=quiet)
    assert opt.steps == 2 * math.ceil(100 / 32)
    assert [len(b) for b in seen] == [32, 32, 32, 4] * 2
    for epoch in range(2):
        order = loader.order(epoch)
        assert sorted(order.tolist()) == list(range(100))
        got = np.concatenate(seen[4 * epoch:4 * epoch + 4])
        assert got.dtype == np.float32
        # the standardised images, in the loader's order of that epoch (not raw pixels, not another order)
        np.testing.assert_allclose(got, std(x[order]), rtol=1e-6)
    assert not np.array_equal(loader.order(0), loader.order(1))


def test_fit_with_arrays_or_a_dataset_batches_them_itself():
    x, y = quadrants(50)
    for train in ((x, y), [x, y], data.ArrayDataset(x, y)):
        strided.manual_seed(0)
        model = small_net()
        opt = CountingSGD(model.parameters(), lr=0.01)
        seen = record_inputs(model)
        fit(model, nn.CrossEntropyLoss(), opt, train, epochs=1, batch_size=16, seed=1, progress=False, log=quiet)
        assert opt.steps == 4 and [len(b) for b in seen] == [16, 16, 16, 2]
        # uint8 images become float32 per batch, unstandardised (no transform was asked for)
        assert sorted(np.concatenate(seen)[:, 0, 0, 0].tolist()) == sorted(x[:, 0, 0, 0].astype(float).tolist())


def test_fit_with_a_dataset_subclass_and_with_a_list_of_batches():
    x, y = quadrants(24)

    class Quadrants(data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return x[i], int(y[i])

    strided.manual_seed(0)
    model = small_net()
    opt = CountingSGD(model.parameters(), lr=0.01)
    fit(model, nn.CrossEntropyLoss(), opt, Quadrants(), epochs=2, batch_size=10, progress=False, log=quiet)
    assert opt.steps == 2 * 3
    batches = [(x[i:i + 8].astype(np.float32), y[i:i + 8]) for i in range(0, 24, 8)]
    seen = record_inputs(model)
    fit(model, nn.CrossEntropyLoss(), opt, batches, epochs=2, progress=False, log=quiet)
    assert opt.steps == 6 + 2 * 3
    for got, (xb, _) in zip(seen, batches * 2):
        np.testing.assert_array_equal(got, xb)


def test_evaluate_takes_arrays_datasets_loaders_and_batches_alike():
    strided.manual_seed(2)
    x, y = quadrants(40)
    model = small_net()
    ref = evaluate(model, (x, y), num_classes=4)
    same = [
        evaluate(model, data.ArrayDataset(x, y), batch_size=7, num_classes=4),
        evaluate(model, data.DataLoader(data.ArrayDataset(x, y), batch_size=9), num_classes=4),
        evaluate(model, [(x[:25], y[:25]), (x[25:], y[25:])], num_classes=4),
    ]
    for res in same:
        assert res["confusion"] == ref["confusion"]
        assert res["loss"] == pytest.approx(ref["loss"], rel=1e-6)


def test_fit_resumes_a_data_loader_run_exactly(tmp_path):
    x, y = quadrants(60)
    std = data.Standardize().fit(x)

    def run(epochs, **kwargs):
        strided.manual_seed(3)
        model = small_net()
        loader = data.DataLoader(data.ArrayDataset(x, y), 16, shuffle=True, seed=7,
                                 transform=data.Compose([data.RandomCrop(8, padding=2), data.RandomHorizontalFlip(),
                                                         std]))
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=epochs, progress=False, log=quiet, **kwargs)
        return weights(model)

    full = run(3)
    run(1, run_dir=tmp_path)
    resumed = run(3, resume=tmp_path)
    assert all(np.array_equal(full[k], resumed[k]) for k in full)
    two = run(2)
    assert not all(np.array_equal(full[k], two[k]) for k in full)


# --------------------------------------------------------------------------- augmentation before standardisation


def test_augmentation_pads_with_the_background_not_mean_grey():
    x = np.where(np.random.default_rng(0).random((64, 1, 8, 8)) < 0.5, 100, 255).astype(np.uint8)
    y = np.zeros(64, np.int64)
    std = data.Standardize().fit(x)
    allowed = std(np.array([0, 100, 255], np.uint8).reshape(3, 1, 1, 1)).ravel()  # background, the two pixel values
    loader = data.DataLoader(data.ArrayDataset(x, y), 16, shuffle=True, seed=0,
                             transform=data.Compose([data.RandomCrop(8, padding=3), std]))
    values = np.unique(np.concatenate([xb for xb, _ in loader]))
    np.testing.assert_array_equal(values, np.sort(allowed))   # padding is std(0): black; never 0.0 (mean grey)
    ds = data.DatasetSplits("toy", ("a",), data.ArrayDataset(x, y), data.ArrayDataset(x[:8], y[:8]))
    loaders = data.make_loaders(ds, validation=0, batch_size=16, augment=data.RandomCrop(8, padding=3))
    values = np.unique(np.concatenate([xb for xb, _ in loaders.train]))
    np.testing.assert_allclose(values, np.sort(allowed), rtol=1e-6)


def test_cli_data_stays_uint8_and_augments_raw_pixels(tmp_path):
    from _fake_datasets import fake_idx_dataset
    from strided import runs

    fake_idx_dataset(tmp_path / "fashion-mnist", n_train=40, n_test=20)
    ds, loaders = runs.prepare_data("fashion-mnist", None, 0.25, 0, root=tmp_path, batch_size=8, augment=True)
    for loader in (loaders.train, loaders.val, loaders.test):
        assert loader.dataset.images.dtype == np.uint8
    assert len(loaders.train.dataset) == 30 and loaders.train.batch_size == 8 and loaders.train.shuffle
    first = loaders.train.transform.transforms
    assert isinstance(first[-1], data.Standardize) and isinstance(first[0], data.Compose)


# --------------------------------------------------------------------------- DataLoader


def test_data_loader_yields_float32_batches_kept_uint8_until_drawn():
    x, y = quadrants(10)
    ds = data.ArrayDataset(x, y)
    loader = data.DataLoader(ds, 4)
    got = list(loader)
    assert [b.shape for b, _ in got] == [(4, 1, 8, 8), (4, 1, 8, 8), (2, 1, 8, 8)] and len(loader) == 3
    assert all(b.dtype == np.float32 and t.dtype == np.int64 for b, t in got)
    np.testing.assert_array_equal(np.concatenate([b for b, _ in got]), x.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([t for _, t in got]), y)
    assert ds.images.dtype == np.uint8 and ds.images is x
    got[0][1][:] = 99  # batches are fresh arrays
    assert not (ds.labels == 99).any()
    dropped = data.DataLoader(ds, 4, drop_last=True)
    assert len(dropped) == 2 and [len(t) for _, t in dropped] == [4, 4]
    std = data.Standardize().fit(x)
    exact, _ = next(iter(data.DataLoader(ds, 4, transform=std, dtype=np.float64)))
    assert exact.dtype == np.float64   # standardised in float64, not float32 cast up
    np.testing.assert_allclose(exact, std(x[:4].astype(np.float64)), rtol=1e-14)


def test_data_loader_order_is_a_function_of_seed_and_epoch():
    x, y = quadrants(30)
    augment = data.Compose([data.RandomCrop(8, padding=2), data.RandomHorizontalFlip()])

    def make(seed=5):
        return data.DataLoader(data.ArrayDataset(x, y), 7, shuffle=True, transform=augment, seed=seed)

    loader = make()
    epochs = [[(b.copy(), t.copy()) for b, t in loader] for _ in range(3)]
    assert loader.state_dict() == {"seed": 5, "epoch": 3, "start_batch": 0}
    assert not np.array_equal(epochs[0][0][1], epochs[1][0][1])   # a new order every epoch

    def same(a, b):
        return len(a) == len(b) and all(np.array_equal(p, q) and np.array_equal(s, t) for (p, s), (q, t) in zip(a, b))

    other = make()
    other.set_epoch(2)                          # straight to epoch 2: the same batches, transforms included
    assert same(list(other), epochs[2])
    other.set_epoch(1, start_batch=3)           # or from the middle of an epoch
    assert same(list(other), epochs[1][3:])
    restored = make(seed=123)
    loader.set_epoch(1)
    restored.load_state_dict(json.loads(json.dumps(loader.state_dict())))
    assert restored.seed == 5 and same(list(restored), epochs[1])
    assert not same(list(make(seed=6)), epochs[0])
    strided.manual_seed(0)
    a = data.DataLoader(data.ArrayDataset(x, y), 7, shuffle=True)
    strided.manual_seed(0)
    b = data.DataLoader(data.ArrayDataset(x, y), 7, shuffle=True)
    assert a.seed == b.seed and np.array_equal(a.order(0), b.order(0))   # seed None: from strided.manual_seed


def test_data_loader_over_a_generic_dataset_stacks_samples():
    x, y = quadrants(9)

    class Plain(data.Dataset):
        def __len__(self):
            return 9

        def __getitem__(self, i):
            return x[i], int(y[i])

    loader = data.DataLoader(Plain(), 4, shuffle=True, seed=1)
    fast = data.DataLoader(data.ArrayDataset(x, y), 4, shuffle=True, seed=1)
    for (a, s), (b, t) in zip(loader, fast):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(s, t)
        assert a.dtype == np.float32 and s.dtype == np.int64


def test_array_dataset_items_and_transform():
    x, y = quadrants(5)
    flip = data.RandomHorizontalFlip(1.0)
    ds = data.ArrayDataset(x, y.astype(np.uint8), transform=flip)
    image, label = ds[-1]
    np.testing.assert_array_equal(image, x[4][..., ::-1])
    assert label == y[4] and isinstance(label, int) and ds.labels.dtype == np.int64
    part = ds.take(np.array([3, 1]))
    assert len(part) == 2 and part.transform is flip
    loader = data.DataLoader(ds, 5)
    np.testing.assert_array_equal(next(iter(loader))[0], x[..., ::-1].astype(np.float32))
    with pytest.raises(IndexError, match="out of range"):
        ds[5]
    assert data.Split is data.ArrayDataset


# --------------------------------------------------------------------------- Compose


def test_compose_applies_in_order_with_one_generator():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.uint8).reshape(2, 1, 2, 3)
    calls = []

    def add(v):
        def t(batch, rng):
            calls.append(rng)
            return batch + v
        return t

    def double(batch, rng):
        calls.append(rng)
        return batch * 2

    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(data.Compose([add(1), double])(x, rng), (x + 1) * 2)
    np.testing.assert_array_equal(data.Compose([double, add(1)])(x, rng), x * 2 + 1)
    assert all(r is rng for r in calls)
    std = data.Standardize(mean=[1.0], std=[2.0])
    np.testing.assert_allclose(data.Compose([data.RandomHorizontalFlip(1.0), std])(x, rng),
                               (x[..., ::-1] - 1.0) / (2.0 + 1e-7), rtol=1e-6)
    with pytest.raises(TypeError, match="callables"):
        data.Compose([double, "flip"])
    with pytest.raises(TypeError, match="list"):
        data.Compose(double)


# --------------------------------------------------------------------------- ImageFolder


def test_image_folder_reads_a_folder_per_class(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    written = {}
    for cls, names in {"trouser": ["b.png", "a.PNG", "deep/c.png"], "dress": ["x.png", "y.jpg"]}.items():
        for name in names:
            path = tmp_path / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            if name.endswith(".jpg"):
                pixels = np.full((6, 5), 77, np.uint8)    # flat: JPEG keeps it exactly
                image_module.fromarray(pixels).save(path, quality=100)
            else:
                image_module.fromarray(pixels).save(path)
            written[str(path)] = pixels
    (tmp_path / "dress" / "notes.txt").write_text("not an image")
    (tmp_path / "empty-file").write_text("")
    ds = data.ImageFolder(tmp_path)
    assert ds.classes == ["dress", "trouser"] and ds.class_to_idx == {"dress": 0, "trouser": 1}
    assert [p.split(str(tmp_path) + "/")[1] for p, _ in ds.samples] == [
        "dress/x.png", "dress/y.jpg", "trouser/a.PNG", "trouser/b.png", "trouser/deep/c.png"]
    assert ds.targets == [0, 0, 1, 1, 1] and len(ds) == 5
    for i, (path, label) in enumerate(ds.samples):
        image, got = ds[i]
        assert image.shape == (1, 6, 5) and image.dtype == np.uint8 and got == label
        np.testing.assert_array_equal(image[0], written[path])
    xb, yb = next(iter(data.DataLoader(ds, 5)))
    assert xb.shape == (5, 1, 6, 5) and xb.dtype == np.float32 and yb.tolist() == [0, 0, 1, 1, 1]
    rgb = tmp_path.parent / (tmp_path.name + "-rgb")
    (rgb / "only").mkdir(parents=True)
    colour = rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)
    image_module.fromarray(colour).save(rgb / "only" / "c.png")
    image, _ = data.ImageFolder(rgb, transform=data.RandomHorizontalFlip(1.0))[0]
    np.testing.assert_array_equal(image, colour.transpose(2, 0, 1)[..., ::-1])


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL.Image")
    with pytest.raises(FileNotFoundError, match="no class folder"):
        data.ImageFolder(tmp_path)
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "readme.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="no image file .* cats"):
        data.ImageFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        data.ImageFolder(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="root"):
        data.ImageFolder(3)


# --------------------------------------------------------------------------- clear errors


def test_bad_loaders_and_bad_fit_arguments_say_what_is_wrong():
    x, y = quadrants(8)
    ds = data.ArrayDataset(x, y)
    with pytest.raises(TypeError, match="ArrayDataset"):
        data.DataLoader(x, 4)
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(ds, 0)
    with pytest.raises(TypeError, match="seed"):
        data.DataLoader(ds, 4, seed=-1)
    with pytest.raises(TypeError, match="shuffle"):
        data.DataLoader(ds, 4, "yes")
    with pytest.raises(TypeError, match="transform"):
        data.DataLoader(ds, 4, transform="flip")
    with pytest.raises(ValueError, match="set_epoch"):
        data.DataLoader(ds, 4).set_epoch(-1)
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\)"):
        data.ArrayDataset(x, y[:5])
    with pytest.raises(TypeError, match="abstract"):
        type("NoLength", (data.Dataset,), {"__getitem__": lambda self, i: (x[i], 0)})()

    class Ragged(data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.zeros((1, 4 + i, 4), np.uint8), 0

    with pytest.raises(ValueError, match="share a shape"):
        list(data.DataLoader(Ragged(), 2))

    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.1)
    loader = data.DataLoader(ds, 4)
    for kwargs, match in [({"batch_size": 32}, "batch_size cannot also be given"),
                          ({"augment": data.RandomHorizontalFlip()}, "augment"),
                          ({"seed": 1}, "seed")]:
        with pytest.raises(ValueError, match=match):
            fit(model, nn.CrossEntropyLoss(), opt, loader, progress=False, log=quiet, **kwargs)
    with pytest.raises(TypeError, match="one-pass iterator"):
        fit(model, nn.CrossEntropyLoss(), opt, iter([(x, y)]), progress=False, log=quiet)
    with pytest.raises(ValueError, match="batch_size cannot also be given"):
        evaluate(model, loader, batch_size=10)
    with pytest.raises(ValueError, match="no batch"):
        fit(model, nn.CrossEntropyLoss(), opt, data.DataLoader(ds, 16, drop_last=True), progress=False, log=quiet)
