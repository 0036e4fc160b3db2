"""Progress lines for long demo/tool steps, with the hosts' chatter kept in log files.

Three pieces, usable from any demo:

* :func:`run_logged` runs a command (e.g. ``tools/train.py``) with its whole output in a log
  file and shows one progress line on the terminal, fed by the command's
  :class:`ProgressHook` through a small status file (``$MMEXT_PROGRESS_FILE``; ``tools/train.py``
  and ``tools/test.py`` add the hook when the variable is set). On failure the log's tail is shown.
* :class:`Heartbeat` is a context manager for in-process steps: a line with the elapsed time,
  the step's own ``update(done, total)`` counts if it reports them, and otherwise the last
  line of its log. :func:`host_output_to` sends ``print``/logging output of a block (torchreid's
  data-summary tables, mmengine's logger) to a log file meanwhile.
* ``python -m mm_ext.engine.progress --log FILE --label TEXT -- CMD ...`` is :func:`run_logged`
  for shell scripts (``tools/demo.sh``).

On a terminal the line is redrawn in place; otherwise (CI logs) a plain line is printed at most
every ``MMEXT_PROGRESS_EVERY`` seconds (default 15).
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ['ProgressLine', 'Heartbeat', 'run_logged', 'host_output_to', 'ENV', 'write_status', 'read_status']

ENV = 'MMEXT_PROGRESS_FILE'


def write_status(path, **status) -> None:
    """Atomically replace the status file with one JSON object."""
    path = str(path)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(status, f)
    os.replace(tmp, path)


def read_status(path) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f'{s // 60}m{s % 60:02d}s' if s >= 60 else f'{s}s'


def _last_line(log) -> str:
    try:
        with open(log, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode('utf-8', 'replace').splitlines() if ln.strip()]
    except OSError:
        return ''
    return lines[-1] if lines else ''


class ProgressLine:
    """One status line on ``stream`` (default: the terminal's stderr, even under redirection).

    Call :meth:`close` at the end (it prints the final line and releases the stream).
    """

    def __init__(self, label: str, stream=None, every: Optional[float] = None, width: int = 24):
        self.label, self.width = label, width
        self._own = stream is None
        # a private copy of the terminal's fd 2, so that later redirections (also dup2 of fd 2
        # into a log file) do not swallow the progress line
        self.stream = stream or os.fdopen(os.dup(sys.__stderr__.fileno()), 'w', buffering=1)
        self.tty = bool(getattr(self.stream, 'isatty', lambda: False)())
        self.every = float(os.environ.get('MMEXT_PROGRESS_EVERY', 15)) if every is None else every
        self.t0 = time.time()
        self._last_print = 0.0
        self._len = 0

    def render(self, done=None, total=None, note: str = '') -> str:
        el = time.time() - self.t0
        parts = [f'  {self.label}']
        if done is not None and total:
            frac = min(1.0, done / total)
            bar = '#' * int(frac * self.width) + '.' * (self.width - int(frac * self.width))
            eta = el / frac - el if frac > 0 else 0.0
            parts.append(f'[{bar}] {done}/{total} {100 * frac:3.0f}%  {_fmt_time(el)}'
                         + (f' eta {_fmt_time(eta)}' if 0 < frac < 1 else ''))
        else:
            parts.append(f'{_fmt_time(el)}')
        if note:
            parts.append(note)
        return '  '.join(parts)

    def update(self, done=None, total=None, note: str = '', force: bool = False) -> None:
        now = time.time()
        if not self.tty and not force and now - self._last_print < self.every:
            return
        self._last_print = now
        text = self.render(done, total, note)
        if self.tty:
            cols = 160
            try:
                cols = os.get_terminal_size(self.stream.fileno()).columns - 1
            except (OSError, ValueError, AttributeError):
                pass
            text = text[:cols]
            self.stream.write('\r' + text + ' ' * max(0, self._len - len(text)))
            self._len = len(text)
        else:
            self.stream.write(text + '\n')
        self.stream.flush()

    def close(self, note: str = '') -> None:
        text = f'  {self.label}  done in {_fmt_time(time.time() - self.t0)}' + (f'  {note}' if note else '')
        if self.tty:
            self.stream.write('\r' + text + ' ' * max(0, self._len - len(text)) + '\n')
        else:
            self.stream.write(text + '\n')
        self.stream.flush()
        if self._own:
            self.stream.close()


def _status_note(st: dict) -> str:
    bits = [st.get('phase', '')]
    if st.get('epoch') is not None and st.get('max_epochs'):
        bits.append(f'epoch {st["epoch"]}/{st["max_epochs"]}')
    if st.get('loss') is not None:
        bits.append(f'loss {st["loss"]:.4g}')
    return '  '.join(b for b in bits if b)


def run_logged(cmd: Sequence[str], log, label: str, cwd=None, env=None, poll: float = 0.5) -> str:
    """Run ``cmd`` with stdout+stderr in ``log``, showing a progress line; returns the log text.

    Raises:
        SystemExit: the command failed; the message holds the command, exit code and log tail.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    fd, status = tempfile.mkstemp(prefix='.progress-', suffix='.json', dir=str(log.parent))
    os.close(fd)
    os.unlink(status)
    env = dict(os.environ if env is None else env)
    env[ENV] = status
    line = ProgressLine(label)
    try:
        with open(log, 'w') as f:
            proc = subprocess.Popen(list(map(str, cmd)), cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
            while proc.poll() is None:
                time.sleep(poll)
                st = read_status(status)
                if st:
                    line.update(st.get('done'), st.get('total'), _status_note(st))
                else:
                    line.update(note=_last_line(log)[:70])
        if proc.returncode != 0:
            line.close(f'FAILED (exit {proc.returncode}); log {log}')
            tail = '\n'.join(log.read_text(errors='replace').splitlines()[-30:])
            raise SystemExit(f'{" ".join(map(str, cmd))} failed ({proc.returncode}); log {log}:\n{tail}')
        line.close(f'log {log}')
    finally:
        with contextlib.suppress(OSError):
            os.unlink(status)
    return log.read_text(errors='replace')


class Heartbeat:
    """Progress line for an in-process step: ``with Heartbeat('train', log=path) as hb: ...``.

    A daemon thread redraws the line every second (terminal) or every ``every`` seconds;
    ``hb.update(done, total, note)`` sets the counts it shows.
    """

    def __init__(self, label: str, log=None, every: Optional[float] = None, stream=None):
        self.line = ProgressLine(label, stream=stream, every=every)
        self.log, self.done, self.total, self.note = log, None, None, ''
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def update(self, done=None, total=None, note: str = '') -> None:
        self.done, self.total, self.note = done, total, note

    def _run(self):
        while not self._stop.wait(1.0):
            note = self.note or (_last_line(self.log)[:70] if self.log else '')
            self.line.update(self.done, self.total, note)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, et, ev, tb):
        self._stop.set()
        self._thread.join(timeout=5)
        self.line.close('FAILED' if et is not None else (f'log {self.log}' if self.log else ''))
        return False


@contextlib.contextmanager
def host_output_to(log):
    """Send ``sys.stdout``/``sys.stderr`` of the block (prints, loggers made inside) to ``log``.

    Progress lines still reach the terminal: :class:`ProgressLine` writes to ``sys.__stderr__``.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'a', buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield f


def _main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description='run a command with its output in a log and a progress line')
    p.add_argument('--log', required=True)
    p.add_argument('--label', required=True)
    p.add_argument('cmd', nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == '--' else a.cmd
    if not cmd:
        p.error('no command given')
    try:
        run_logged(cmd, a.log, a.label)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(_main())
