"""docs/custom_modules.md runs as printed, and its hand-written Bottleneck is torchvision's block to the last bit.

The document's code blocks run in order in one namespace (their gradchecks
raise on any wrong gradient); then the Bottleneck it defines is compared in
float64 with the same block written with torch.nn, attribute for attribute.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from strided import io as sio

from _parity import assert_close, load_torch_weights, run_ours, run_torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "custom_modules.md"


@pytest.fixture(scope="module")
def doc_namespace():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    ns = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), ns)
    return ns


def _torch_bottleneck(torch, in_channels, planes, stride):
    T = torch.nn

    class Bottleneck(T.Module):
        def __init__(self):
            super().__init__()
            out = planes * 4
            self.conv1 = T.Conv2d(in_channels, planes, 1, bias=False)
            self.bn1 = T.BatchNorm2d(planes)
            self.conv2 = T.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = T.BatchNorm2d(planes)
            self.conv3 = T.Conv2d(planes, out, 1, bias=False)
            self.bn3 = T.BatchNorm2d(out)
            self.relu = T.ReLU()
            self.downsample = None
            if stride != 1 or in_channels != out:
                self.downsample = T.Sequential(T.Conv2d(in_channels, out, 1, stride, bias=False), T.BatchNorm2d(out))

        def forward(self, x):
            h = self.relu(self.bn1(self.conv1(x)))
            h = self.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
            return self.relu(h + (x if self.downsample is None else self.downsample(x)))

    return Bottleneck().double()


@pytest.mark.torch
@pytest.mark.parametrize("in_channels,planes,stride", [(8, 2, 1), (4, 3, 2)])
def test_the_documented_bottleneck_matches_torch(torch, doc_namespace, in_channels, planes, stride):
    block = doc_namespace["Bottleneck"](in_channels, planes, stride).to(np.float64)
    tblock = _torch_bottleneck(torch, in_channels, planes, stride)
    assert list(block.state_dict()) == list(tblock.state_dict())
    load_torch_weights(block, tblock)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, in_channels, 6, 5))
    dy = rng.standard_normal(tblock(torch.from_numpy(x)).shape)
    load_torch_weights(block, tblock)  # the shape probe above moved torch's running statistics: reset both
    (y, dx, grads), (ty, tdx, tgrads) = run_ours(block, x, dy), run_torch(torch, tblock, x, dy)
    assert_close(y, ty, "output")
    assert_close(dx, tdx, "input gradient")
    for name, g in grads.items():
        assert_close(g, tgrads[name], f"gradient of {name}")
    for name, b in tblock.state_dict().items():
        assert_close(block.state_dict()[name], b.numpy(), name)


def test_the_documented_bottleneck_saves_and_loads(doc_namespace, tmp_path):
    block = doc_namespace["Bottleneck"](4, 2, stride=2).eval()
    loaded = sio.load(sio.save(block, tmp_path / "block.npz"))
    assert type(loaded) is doc_namespace["Bottleneck"] and loaded.downsample is not None
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), block(x))
