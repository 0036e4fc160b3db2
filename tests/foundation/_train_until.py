"""Run ``tools/train.py`` but stop before training iteration STOP (0-based, global) and wait to be killed.

    python tests/foundation/_train_until.py STOP MARKER_FILE tools/train.py CONFIG [train.py args]

Before the iteration with ``runner.iter == STOP`` starts, MARKER_FILE is written and the process
sleeps; the test then sends SIGKILL from outside, a real mid-epoch kill at a known point.
"""
import os
import runpy
import sys
import time


def main():
    stop, marker, script, *rest = sys.argv[1:]
    stop = int(stop)
    from mmengine.runner import loops

    def wrap(cls):
        original = cls.run_iter

        def run_iter(self, *args, **kwargs):
            if self.runner.iter == stop:
                with open(marker, 'w') as f:
                    f.write(str(os.getpid()))
                while True:
                    time.sleep(1)
            return original(self, *args, **kwargs)

        cls.run_iter = run_iter

    wrap(loops.EpochBasedTrainLoop)
    wrap(loops.IterBasedTrainLoop)
    sys.argv = [script, *rest]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
