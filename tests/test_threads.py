"""MXNet computes with every core by default (``gluon_asymmnet.threads``); the user's
choice wins."""
import os
import subprocess
import sys

import pytest

from gluon_asymmnet import threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: A command's first steps: the package, then MXNet; prints OMP_NUM_THREADS and the
#: process's threads once MXNet's OpenMP has run a convolution and a GEMM.
PROGRAM = '''
import os
import gluon_asymmnet
import mxnet as mx
x = mx.nd.ones((1, 16, 32, 32))
mx.nd.Convolution(x, mx.nd.ones((16, 16, 3, 3)), kernel=(3, 3), num_filter=16,
                  no_bias=True).wait_to_read()
mx.nd.dot(mx.nd.ones((256, 256)), mx.nd.ones((256, 256))).wait_to_read()
print(os.environ.get('OMP_NUM_THREADS'), len(os.listdir('/proc/self/task')))
'''


def run_program(**variables):
    env = {key: value for key, value in os.environ.items()
           if key not in ('OMP_NUM_THREADS', threads.CHOSEN_VARIABLE, 'MXNET_OMP_MAX_THREADS')}
    env.update(variables, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, '-c', PROGRAM], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    setting, count = out.stdout.split()
    return setting, int(count)


@pytest.mark.skipif(not os.path.isdir('/proc/self/task'), reason='counts threads in /proc')
def test_a_default_run_computes_with_every_core_and_the_users_setting_wins():
    cores = threads.available_cores()
    default = run_program()
    # the same threads as a run told to use every core (MXNet alone would start cores / 2)
    assert default == run_program(OMP_NUM_THREADS=str(cores)) and default[0] == str(cores)
    one = run_program(OMP_NUM_THREADS='1')
    assert one[0] == '1'
    if cores > 1:
        assert default[1] > one[1]


def test_cores_are_physical_cores_of_the_affinity():
    pairs = {0: '0,2', 1: '1,3', 2: '0,2', 3: '1,3'}   # two cores, two hyperthreads each
    assert threads.available_cores([0, 1, 2, 3], pairs.__getitem__) == 2
    assert threads.available_cores([0, 2], pairs.__getitem__) == 1

    def unreadable(cpu):
        raise OSError('no topology')
    assert threads.available_cores([0, 1, 2], unreadable) == 3
    assert threads.available_cores() >= 1


def test_the_package_chooses_only_where_nobody_did():
    environ = {}
    assert threads.use_all_cores(environ, cores=4) == 4
    assert environ['OMP_NUM_THREADS'] == '4' and threads.user_threads(environ) is None
    for chosen in ({'OMP_NUM_THREADS': '1'}, {'MXNET_OMP_MAX_THREADS': '3'}):
        environ = dict(chosen)
        assert threads.use_all_cores(environ, cores=4) is None and environ == chosen


def test_local_workers_share_the_cores_unless_the_user_chose():
    package_default = {}
    threads.use_all_cores(package_default, cores=8)
    for environ in ({}, package_default):
        assert threads.worker_threads(environ, 3, cores=8)['OMP_NUM_THREADS'] == '2'
    assert threads.worker_threads({}, 16, cores=8)['OMP_NUM_THREADS'] == '1'
    assert threads.worker_threads({'OMP_NUM_THREADS': '4'}, 2, cores=8)['OMP_NUM_THREADS'] == '4'
    assert 'OMP_NUM_THREADS' not in threads.worker_threads({'MXNET_OMP_MAX_THREADS': '2'}, 2, 8)
