"""Weights in and out: model files, checkpoints, PyTorch interchange and ONNX export.

- :func:`save` / :func:`load`: a model (architecture as JSON + weights) in one
  ``.npz`` (or ``.safetensors``) file, rebuilt by ``load`` with no user code;
  :func:`save_state_dict` / :func:`load_state_dict` for the weights alone;
  :func:`info` to inspect a file; :func:`register_module` for your own layers.
- :func:`save_checkpoint` / :func:`load_checkpoint`: a training run's full state
  (model, optimizer, scheduler, epoch, history, random states) for exact resume.
- :func:`from_torch` / :func:`to_torch`: convert models (``Sequential``, ``Residual``, ``Concat`` and layers)
  to and from PyTorch; :func:`torch_residual` / :func:`torch_concat` are the torch side's containers;
  :func:`register_torch_layer` adds a layer defined outside :mod:`strided.nn` (``SyncBatchNorm``).
- :func:`export_onnx`: an opset-17 ONNX graph with a dynamic batch dimension.
- :func:`atomic_write`: the temporary-file-and-rename writer every file write in strided uses
  (:func:`write_json_atomic` for JSON).

Nothing is ever pickled; every malformed file raises :class:`FileFormatError`
naming the file and the problem.
"""
from .atomic import atomic_write, write_bytes_atomic, write_json_atomic, write_text_atomic
from .checkpoint import load_checkpoint, save_checkpoint
from .containers import FileFormatError
from .model_file import FORMAT_VERSION, info, load, load_state_dict, save, save_state_dict
from .onnx_export import export_onnx
from .serialize import ArchitectureError, UnregisteredModuleError, register_module, registered_modules
from .torch_interop import from_torch, register_torch_layer, to_torch, torch_concat, torch_residual

__all__ = [
    "save", "load", "info", "save_state_dict", "load_state_dict", "register_module", "registered_modules",
    "save_checkpoint", "load_checkpoint", "from_torch", "to_torch", "register_torch_layer", "torch_residual", "torch_concat", "export_onnx",
    "atomic_write", "write_bytes_atomic", "write_json_atomic", "write_text_atomic",
    "FileFormatError", "ArchitectureError", "UnregisteredModuleError", "FORMAT_VERSION",
]
