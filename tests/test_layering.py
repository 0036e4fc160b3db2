"""``core/`` packages may import only stdlib, torch, numpy and other core modules."""
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED_TOP = {'torch', 'numpy', '__future__'}


def _core_files():
    for pkg in ('mm_ext', 'reid_ext'):
        yield from sorted((REPO / pkg).glob('core/**/*.py'))


def _violations(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = path.relative_to(REPO).parts[0]
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: must stay inside core
                depth = len(path.relative_to(REPO / pkg / 'core').parts) - 1
                if node.level > depth + 1:
                    bad.append(f'{path}:{node.lineno} relative import leaves core/')
                continue
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split('.')[0]
            if top in ALLOWED_TOP or top in sys.stdlib_module_names:
                continue
            if name.startswith(f'{pkg}.core'):
                continue
            bad.append(f'{path.relative_to(REPO)}:{node.lineno} imports {name}')
    return bad


def test_core_imports_only_torch_numpy_stdlib():
    bad = [v for f in _core_files() for v in _violations(f)]
    assert not bad, 'core modules must not import hosts:\n' + '\n'.join(bad)


def test_layering_check_catches_a_host_import(tmp_path):
    f = REPO / 'mm_ext' / 'core' / '_tmp_layering_probe.py'
    f.write_text('import mmdet\nfrom mmengine import Config\n')
    try:
        assert len(_violations(f)) == 2
    finally:
        f.unlink()
