"""Deployment: deploy graphs, export (MXNet and ONNX), runtimes and INT8 quantization.

``info``: what an export expects (``-info.json``); ``graph``: the deploy symbol
of a network; ``sources``: networks with their weights (zoo + parameter file,
training run folder); ``onnx``: ONNX export, check and loading; ``export``:
:func:`~gluon_asymmnet.deploy.export.export_model`; ``runtime``: running any of
them on numpy batches; ``quantize``: INT8 with MXNet oneDNN and ONNX Runtime.
"""
