"""mmengine writes checkpoints in place: a kill during the write leaves a truncated ``epoch_N.pth``.

:func:`apply` routes local-file saves of ``mmengine.runner.checkpoint.save_checkpoint`` (what
``Runner.save_checkpoint`` and ``CheckpointHook`` use) through a temp file in the same folder that
is fsynced and then renamed over the target, so a checkpoint file is either complete or absent.
Remote backends (``s3://``, ``pavi://``, ...) keep mmengine's own code.
"""
import io
import os
import os.path as osp

from .post_import import when_imported

__all__ = ['atomic_save_checkpoint', 'apply']


def _is_local(filename, file_client_args, backend_args) -> bool:
    return (isinstance(filename, (str, os.PathLike)) and '://' not in str(filename)
            and file_client_args is None and backend_args is None)


def _make(original):

    def atomic_save_checkpoint(checkpoint, filename, file_client_args=None, backend_args=None):
        if not _is_local(filename, file_client_args, backend_args):
            return original(checkpoint, filename, file_client_args=file_client_args,
                            backend_args=backend_args)
        import torch
        filename = str(filename)
        folder = osp.dirname(osp.abspath(filename))
        os.makedirs(folder, exist_ok=True)
        tmp = osp.join(folder, f'.{osp.basename(filename)}.tmp-{os.getpid()}')
        with io.BytesIO() as buf:
            torch.save(checkpoint, buf)
            with open(tmp, 'wb') as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, filename)

    atomic_save_checkpoint.__mm_ext_atomic__ = True
    atomic_save_checkpoint.__wrapped__ = original
    atomic_save_checkpoint.__doc__ = original.__doc__
    return atomic_save_checkpoint


atomic_save_checkpoint = None  # set once mmengine is imported


def _patch_checkpoint_module(module) -> None:
    global atomic_save_checkpoint
    if getattr(module.save_checkpoint, '__mm_ext_atomic__', False):
        return
    module.save_checkpoint = atomic_save_checkpoint = _make(module.save_checkpoint)


def _patch_runner_module(module) -> None:
    # runner.py imported the name from .checkpoint; point it at the patched function
    import mmengine.runner.checkpoint as ckpt
    _patch_checkpoint_module(ckpt)
    if not getattr(getattr(module, 'save_checkpoint', None), '__mm_ext_atomic__', False):
        module.save_checkpoint = ckpt.save_checkpoint


def apply() -> None:
    when_imported('mmengine.runner.checkpoint', _patch_checkpoint_module)
    when_imported('mmengine.runner.runner', _patch_runner_module)
