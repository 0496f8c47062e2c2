"""gluon-asymmnet: AsymmNet for Apache MXNet/Gluon."""
from setuptools import find_packages, setup

#: pip install '.[onnx]': ONNX export, ONNX Runtime and its INT8 (the errors of a missing one
#: name this extra); versions as constraints.txt pins them (onnx 1.16.2 needs protobuf < 5;
#: onnxruntime 1.32.0 is the version tested); ml_dtypes and sympy: onnxruntime's quantizer.
ONNX = ['onnx==1.16.2', 'onnxruntime>=1.17,<1.33', 'protobuf<5', 'ml_dtypes', 'sympy']
#: pip install '.[tensorboard]': train_imagenet.py --tensorboard.
TENSORBOARD = ['mxboard', 'protobuf<5']
#: pip install '.[test]': everything the tests use (requirements-dev.txt for make venv).
EXTRAS = {'onnx': ONNX, 'tensorboard': TENSORBOARD,
          'test': ['pytest', 'pytest-xdist', 'pytest-timeout', 'hypothesis'] + ONNX + TENSORBOARD}

setup(
    name='gluon-asymmnet',
    version='0.1.0',
    description='AsymmNet (CVPR Workshops 2021) ultralight CNNs for Apache MXNet/Gluon',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['gluon_asymmnet', 'gluon_asymmnet.*']),
    python_requires='>=3.9',   # os.waitstatus_to_exitcode (experiments runner)
    # numpy must stay below 1.24 for mxnet 1.9.1; constraints.txt pins the rest.
    install_requires=['mxnet==1.9.1', 'numpy<1.24', 'gluoncv==0.10.5.post0', 'tqdm',
                      'matplotlib<3.9', 'scikit-learn<1.4', 'opencv-python<4.9', 'Pillow'],
    extras_require=EXTRAS,
    entry_points={'console_scripts': [
        'asymmnet-summary=gluon_asymmnet.summary:main',
        'asymmnet-train=gluon_asymmnet.train:main',
        'asymmnet-plot=gluon_asymmnet.plot:main',
        'asymmnet-prepare=gluon_asymmnet.data.prepare:main',
        'asymmnet-launch=gluon_asymmnet.launch:main',
        'asymmnet-eval=gluon_asymmnet.evaluate:main',
        'asymmnet-export=gluon_asymmnet.export:main',
        'asymmnet-quantize=gluon_asymmnet.quantize:main',
        'asymmnet-convert=gluon_asymmnet.convert:main',
        'asymmnet-experiments=gluon_asymmnet.experiments.cli:main',
    ]},
)
