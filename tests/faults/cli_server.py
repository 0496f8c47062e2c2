"""Run many command lines cheaply: import once, fork once per command.

Importing MXNet and GluonCV takes seconds; property-based tests run a command
dozens of times. This server (``python cli_server.py``, started by
:class:`faultlib.CliServer`) imports the commands' modules once, then for each
request read from stdin (one JSON object per line: ``{"command": [...],
"env": {...}, "cwd": folder, "timeout": s}``) forks a child that runs the command exactly as
the interpreter would run ``python SCRIPT ARGS`` or ``python -m MODULE ARGS``
(``runpy``, ``__name__ == '__main__'``, ``sys.argv`` set, an uncaught exception
printed as a traceback with exit status 1), its stdout and stderr going to
files. It answers one JSON line: ``{"returncode", "stdout", "stderr"}``.
"""
import json
import os
import runpy
import signal
import sys
import tempfile
import time
import traceback

#: Modules every command imports; loaded before the first fork.
PRELOAD = ('mxnet', 'gluoncv', 'gluon_asymmnet', 'gluon_asymmnet.train',
           'gluon_asymmnet.data', 'onnxruntime', 'matplotlib.backends.backend_agg')


def _child(command, env, cwd, out_path, err_path):
    """Run ``command`` (``[python, script, ...]`` or ``[python, -m, module, ...]``) and exit."""
    code = 1
    try:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        for fd, path in ((1, out_path), (2, err_path)):
            handle = os.open(path, os.O_WRONLY | os.O_TRUNC)
            os.dup2(handle, fd)
            os.close(handle)
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            if command[1] == '-m':
                sys.argv = [command[2]] + command[3:]
                runpy.run_module(command[2], run_name='__main__', alter_sys=True)
            else:
                sys.argv = command[1:]
                runpy.run_path(command[1], run_name='__main__')
            code = 0
        except SystemExit as stop:
            if stop.code is None:
                code = 0
            elif isinstance(stop.code, int):
                code = stop.code
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except BaseException:   # noqa: BLE001 - what the interpreter does
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xff)


def _run(request):
    out_fd, out_path = tempfile.mkstemp(prefix='cli-out-')
    err_fd, err_path = tempfile.mkstemp(prefix='cli-err-')
    os.close(out_fd)
    os.close(err_fd)
    try:
        pid = os.fork()
        if pid == 0:
            _child(request['command'], request['env'], request['cwd'], out_path, err_path)
        deadline = time.monotonic() + request.get('timeout', 120)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        returncode = os.waitstatus_to_exitcode(status)
        with open(out_path, errors='replace') as out, open(err_path, errors='replace') as err:
            return {'returncode': returncode, 'stdout': out.read(), 'stderr': err.read(),
                    'timed_out': not done}
    finally:
        os.remove(out_path)
        os.remove(err_path)


def main():
    for module in PRELOAD:
        __import__(module)
    sys.stdout.write(json.dumps({'ready': True}) + '\n')
    sys.stdout.flush()
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(_run(json.loads(line))) + '\n')
            sys.stdout.flush()


if __name__ == '__main__':
    main()
