"""The stateless functional core.

Every op is a pair: ``*_forward(...)`` returns the output and a named cache
(what the derivative needs), ``*_backward(dy, cache)`` returns the gradients.
Layers in :mod:`strided.nn` are thin classes that keep the cache and the
parameters; everything numerical lives here.

What a cache holds of the input: a weight gradient never depends on what
the caller does to x after forward (batch norm in eval mode aside, below).
Convolutions (every algorithm, the transposed one too) and ``linear`` read
x for their weight gradient, so their cache holds their own copy of it (or
work the algorithm derived from it); normalisation and pooling keep arrays
they computed. The element-wise activations that need x for dx (LeakyReLU,
GELU, SiLU, ELU, Hardswish, Gaussian) keep x itself, as it is the previous
layer's output, which nothing else writes (an in-place activation keeps a
copy): change x in place between their forward and backward and dx follows
the change. So does batch norm in eval mode, whose forward writes y alone
(what inference needs) and keeps x for a backward to standardise again.
"""
from .activation import (elu_backward, elu_forward, gaussian_backward, gaussian_forward, gelu_backward, gelu_forward,
                         hardswish_backward, hardswish_forward, implicit_softmax_dim, leaky_relu_backward,
                         leaky_relu_forward, log_softmax, relu_backward, relu_forward, sigmoid, sigmoid_backward,
                         sigmoid_forward, silu_backward, silu_forward, softmax, softmax_backward, softmax_forward,
                         tanh_backward, tanh_forward)
from .conv import PADDING_MODES, Conv2dCache, Conv2dGrads, conv2d_backward, conv2d_forward
from .conv_transpose import (ConvTranspose2dCache, check_output_padding, conv_transpose2d_backward,
                             conv_transpose2d_forward, conv_transpose2d_output_size)
from .dropout import Dropout2dCache, dropout2d_backward, dropout2d_forward, dropout_backward, dropout_forward
from .linear import LinearCache, LinearGrads, linear_backward, linear_forward
from .loss import (LossCache, bce_forward, bce_with_logits_forward, cross_entropy_forward, loss_backward,
                   mse_forward, nll_forward)
from .normalization import (BatchNormCache, BatchNormGrads, GroupNormCache, LayerNormCache, NormGrads,
                            batch_norm_backward, batch_norm_forward, group_norm_backward, group_norm_forward,
                            layer_norm_backward, layer_norm_forward)
from .padding import PAD_MODES, PadCache, pad_backward, pad_forward
from .pool import (AdaptiveAvgPool2dCache, AdaptiveMaxPool2dCache, AvgPool2dCache, MaxPool2dCache,
                   adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, adaptive_max_pool2d_backward,
                   adaptive_max_pool2d_forward, adaptive_output_size, avg_pool2d_backward, avg_pool2d_forward,
                   max_pool2d_backward, max_pool2d_forward, max_pool2d_indices)
from .special import erf
from .upsample import MODES as INTERPOLATE_MODES
from .upsample import (AxisTaps, InterpolateCache, check_interpolate_args, interpolate_backward, interpolate_forward,
                       interpolate_sizes)
