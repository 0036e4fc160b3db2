"""Small datasets generated in a host's real on-disk format (see ``tools/make_data.py``).

Each entry maps a dataset name to ``"module:function"``; the function has the
signature ``generate(out_dir: pathlib.Path, seed: int = 0, **options) -> dict``
and writes the dataset *into* ``out_dir`` (an empty temporary folder: the
caller renames it into place when the function returns, so a failed run never
leaves a half-written dataset). It returns a small summary dict (counts).
"""
import importlib
import os
import shutil
import tempfile
import json
from pathlib import Path

DATASETS = {
    'digits-cifar': 'mm_ext.datagen.digits_cifar:generate',
    'synth-crowd': 'mm_ext.datagen.synth_crowd:generate',
    'scene-bias-video': 'mm_ext.datagen.scene_bias_video:generate',
    'synth-ped': 'reid_ext.datagen.synth_ped:generate',
    'synth-pi': 'reid_ext.datagen.synth_pi:generate',
    'clutter-shapes-cifar': 'mm_ext.datagen.clutter_shapes_cifar:generate',
}

STAMP = '.mm_ext_dataset.json'


def default_root() -> Path:
    """``$MMEXT_DATA`` or ``<repo>/data``."""
    env = os.environ.get('MMEXT_DATA')
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / 'data'


def make_dataset(name: str, root=None, seed: int = 0, force: bool = False, **options) -> Path:
    """Generate dataset ``name`` under ``root/<name>`` (idempotent).

    A dataset already present with the same seed and options is reused.
    Extra ``options`` are passed to the generator and recorded in the stamp,
    so a different option set lands in its own folder ``<name>-<suffix>``
    when ``suffix`` is given in ``options`` (it is not passed on).

    Returns:
        Path: the dataset folder.
    """
    if name not in DATASETS:
        raise KeyError(f'unknown dataset {name!r}; available: {sorted(DATASETS)}')
    root = Path(root) if root is not None else default_root()
    suffix = options.pop('suffix', None)
    out = root / (f'{name}-{suffix}' if suffix else name)
    wanted = {'name': name, 'seed': seed, 'options': options}
    stamp = out / STAMP
    if out.exists() and not force:
        try:
            if json.loads(stamp.read_text()).get('request') == wanted:
                return out
        except (OSError, ValueError):
            pass
        raise FileExistsError(
            f'{out} exists but was not generated with {wanted}; pass force=True '
            f'(tools/make_data.py {name} --force) to regenerate it')
    module, func = DATASETS[name].split(':')
    generate = getattr(importlib.import_module(module), func)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{name}-', dir=root))
    os.chmod(tmp, 0o755)
    try:
        summary = generate(tmp, seed=seed, **options) or {}
        (tmp / STAMP).write_text(json.dumps({'request': wanted, 'summary': summary}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
