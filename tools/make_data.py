#!/usr/bin/env python
"""Write a small embedded dataset in a host's real on-disk format.

    python tools/make_data.py digits-cifar            # -> data/digits-cifar/cifar-10-batches-py/
    python tools/make_data.py synth-crowd --seed 1 --root /tmp/data
    python tools/make_data.py --list
"""
import argparse
import json
import sys

from mm_ext.datagen import DATASETS, default_root, make_dataset


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('name', nargs='?', help=f'one of {sorted(DATASETS)}')
    p.add_argument('--root', default=None, help=f'parent folder (default {default_root()})')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--force', action='store_true', help='regenerate even if present')
    p.add_argument('--option', '-o', action='append', default=[], metavar='KEY=VALUE',
                   help='generator option, value parsed as JSON when possible (repeatable)')
    p.add_argument('--list', action='store_true', help='list the datasets and exit')
    a = p.parse_args(argv)
    if a.list or not a.name:
        print('\n'.join(sorted(DATASETS)))
        return 0
    opts = {}
    for kv in a.option:
        if '=' not in kv:
            p.error(f'--option expects KEY=VALUE, got {kv!r}')
        k, v = kv.split('=', 1)
        try:
            opts[k] = json.loads(v)
        except ValueError:
            opts[k] = v
    out = make_dataset(a.name, root=a.root, seed=a.seed, force=a.force, **opts)
    print(out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
