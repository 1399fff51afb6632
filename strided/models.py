"""Ready-made networks."""
from __future__ import annotations

from . import _checks, nn


def lenet5(num_classes: int = 10, in_channels: int = 1, dtype=None) -> nn.Sequential:
    """LeNet-5 on 28x28 inputs (write-up 001), layer for layer torch's ``Sequential`` of the same modules.

    x: (N, in_channels, 28, 28) -> logits (N, num_classes).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2, dtype=dtype), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5, dtype=dtype), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120, dtype=dtype), nn.Tanh(),
        nn.Linear(120, 84, dtype=dtype), nn.Tanh(),
        nn.Linear(84, num_classes, dtype=dtype),
    )


def two_class_net(kernel_size: int = 3, image_size: int = 28, dtype=None) -> nn.Sequential:
    """Write-up 003's minimal CNN: one k x k filter ('same' padding, no bias), ReLU, a dense layer to one output, sigmoid.

    x: (N, 1, image_size, image_size) -> probability (N, 1); train with ``BCELoss``.
    """
    return nn.Sequential(
        nn.Conv2d(1, 1, kernel_size, padding="same", bias=False, dtype=dtype), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(image_size * image_size, 1, bias=False, dtype=dtype), nn.Sigmoid(),
    )


def _conv_bn_relu(cin, cout, dtype):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(cout, dtype=dtype), nn.ReLU()]


def fashion_cnn(num_classes: int = 10, in_channels: int = 1, dtype=None) -> nn.Sequential:
    """A strong small network for 28x28 images: two conv-pool-BN-ReLU blocks, dropout, two dense layers.

    x: (N, in_channels, 28, 28) -> logits (N, num_classes).

    Each block max-pools right after its convolution, so batch norm and ReLU
    run on a quarter of the pixels (pooling commutes with ReLU; the batch
    statistics are those of the pooled maps). The first block is narrow, 16
    filters, because it is the one that works on full-size 28x28 maps; the
    second, 64 filters on 14x14 maps, carries the capacity. With Adam (lr
    0.002, cosine schedule, batches of 64) it reaches about 0.93 test
    accuracy on Fashion-MNIST in 10 epochs (``strided reproduce fashion-10``).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False, dtype=dtype), nn.MaxPool2d(2),
        nn.BatchNorm2d(16, dtype=dtype), nn.ReLU(),                                   # 16 x 14 x 14
        nn.Conv2d(16, 64, 3, padding=1, bias=False, dtype=dtype), nn.MaxPool2d(2),
        nn.BatchNorm2d(64, dtype=dtype), nn.ReLU(),                                   # 64 x 7 x 7
        nn.Flatten(), nn.Dropout(0.3),
        nn.Linear(64 * 7 * 7, 128, dtype=dtype), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(128, num_classes, dtype=dtype),
    )


def cifar_cnn(num_classes: int = 10, in_channels: int = 3, dtype=None) -> nn.Sequential:
    """A VGG-style network for 32x32 colour images: three blocks of two 3x3 conv-BN-ReLU and a max pool.

    x: (N, in_channels, 32, 32) -> logits (N, num_classes).
    """
    return nn.Sequential(
        *_conv_bn_relu(in_channels, 32, dtype), *_conv_bn_relu(32, 32, dtype), nn.MaxPool2d(2),   # 16x16
        *_conv_bn_relu(32, 64, dtype), *_conv_bn_relu(64, 64, dtype), nn.MaxPool2d(2),            # 8x8
        *_conv_bn_relu(64, 128, dtype), *_conv_bn_relu(128, 128, dtype), nn.MaxPool2d(2),         # 4x4
        nn.Flatten(), nn.Dropout(0.3),
        nn.Linear(128 * 4 * 4, num_classes, dtype=dtype),
    )


def basic_block(cin: int, cout: int, stride: int = 1, dtype=None) -> nn.Sequential:
    """A ResNet basic block (He et al. 2016): ``Sequential(Residual(body, shortcut), ReLU())``.

    body = conv3x3(cin, cout, stride)-BN-ReLU-conv3x3(cout, cout)-BN, convolutions
    without bias (batch norm follows). The shortcut is the identity (None) when
    the shape is kept (``cin == cout`` and ``stride == 1``), else a strided 1x1
    convolution without bias and batch norm (the paper's option B, a projection,
    rather than option A's zero-padded identity). The ReLU comes after the sum.

    x: (N, cin, H, W) -> (N, cout, ceil(H / stride), ceil(W / stride)).
    """
    body = nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(cout, dtype=dtype),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(cout, dtype=dtype),
    )
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False, dtype=dtype),
                                 nn.BatchNorm2d(cout, dtype=dtype))
    return nn.Sequential(nn.Residual(body, shortcut), nn.ReLU())


def resnet20(num_classes: int = 10, in_channels: int = 3, dtype=None) -> nn.Sequential:
    """ResNet-20 for CIFAR (He et al. 2016, section 4.2), with projection shortcuts (option B).

    conv3x3(in_channels, 16)-BN-ReLU, three stages of three :func:`basic_block`
    with 16, 32 and 64 channels (the first block of stages 2 and 3 halves the
    resolution with stride 2 and a 1x1 conv + BN shortcut), global average
    pooling, a dense layer. About 0.27M parameters.

    x: (N, in_channels, 32, 32) -> logits (N, num_classes); stages give
    16 x 32 x 32, 32 x 16 x 16, 64 x 8 x 8.
    """
    def stage(cin, cout, stride):
        return nn.Sequential(basic_block(cin, cout, stride, dtype), basic_block(cout, cout, 1, dtype),
                             basic_block(cout, cout, 1, dtype))
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(16, dtype=dtype), nn.ReLU(),
        stage(16, 16, 1), stage(16, 32, 2), stage(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, num_classes, dtype=dtype),
    )


def fashion_resnet(num_classes: int = 10, in_channels: int = 1, dtype=None) -> nn.Sequential:
    """A small residual network for 28x28 grey images: a conv stem, three :func:`basic_block`, global pooling.

    conv3x3(in_channels, 32)-BN-ReLU-maxpool(2) (32 x 14 x 14), blocks 32->32
    (stride 1), 32->64 (stride 2, 7 x 7) and 64->128 (stride 2, 4 x 4) with
    1x1 conv + BN shortcuts where the shape changes, global average pooling, a
    dense layer. About 0.31M parameters.

    x: (N, in_channels, 28, 28) -> logits (N, num_classes).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(32, dtype=dtype), nn.ReLU(),
        nn.MaxPool2d(2),
        basic_block(32, 32, 1, dtype), basic_block(32, 64, 2, dtype), basic_block(64, 128, 2, dtype),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, num_classes, dtype=dtype),
    )


def fashion_resnet8(num_classes: int = 10, in_channels: int = 1, zero_init_residual: bool = False,
                    dtype=None) -> nn.Sequential:
    """ResNet-8 for 28x28 grey images: a stride-2 conv stem, three :func:`basic_block`, global pooling.

    conv3x3(in_channels, 32, stride 2)-BN-ReLU (32 x 14 x 14), blocks 32->32
    (stride 1), 32->64 (stride 2, 7 x 7) and 64->128 (stride 2, 4 x 4) with
    1x1 conv + BN shortcuts where the shape changes, global average pooling, a
    dense layer: eight weighted layers on the main path, about 0.31M
    parameters. It is :func:`fashion_resnet` with the stem's max pool folded
    into a strided convolution, so no layer works on 28x28 maps: the same
    parameters and nearly the same multiply-adds, without the memory-bound
    batch norm, ReLU and pooling of 32 full-size maps, which buys epochs
    within a fixed time (``strided reproduce fashion-resnet``).

    zero_init_residual: start the last batch norm scale (gamma) of every
    residual body at zero, as torchvision's option of the same name, so each
    block begins as its shortcut and the network trains as a shallower one
    early on (Goyal et al. 2017).

    x: (N, in_channels, 28, 28) -> logits (N, num_classes).
    """
    zero_init_residual = _checks.boolean("zero_init_residual", zero_init_residual)
    model = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(32, dtype=dtype),
        nn.ReLU(),
        basic_block(32, 32, 1, dtype), basic_block(32, 64, 2, dtype), basic_block(64, 128, 2, dtype),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, num_classes, dtype=dtype),
    )
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, nn.Residual):
                m.body[-1].weight.data[...] = 0       # basic_block's body ends in its second batch norm
    return model


# name -> (builder, input shape (C, H, W), what it is)
MODELS = {
    "lenet5": (lenet5, (1, 28, 28), "LeNet-5 (write-up 001): tanh, average pooling"),
    "two_class_net": (two_class_net, (1, 28, 28), "write-up 003: one 3x3 filter, dense, sigmoid (binary)"),
    "fashion_cnn": (fashion_cnn, (1, 28, 28), "two conv-pool-BN-ReLU blocks (16, 64 filters) with dropout"),
    "cifar_cnn": (cifar_cnn, (3, 32, 32), "VGG-style, three blocks, for CIFAR-10"),
    "resnet20": (resnet20, (3, 32, 32), "ResNet-20 (He et al. 2016) for CIFAR-10, projection shortcuts"),
    "fashion_resnet": (fashion_resnet, (1, 28, 28), "conv stem and three residual blocks (32, 64, 128)"),
    "fashion_resnet8": (fashion_resnet8, (1, 28, 28), "stride-2 conv stem and three residual blocks (32, 64, 128)"),
}


def get_model(name: str, **kwargs) -> nn.Sequential:
    """Build a zoo model by name (see ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(map(repr, MODELS))}")
    return MODELS[name][0](**kwargs)
