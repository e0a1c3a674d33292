"""How a forward pass runs: the hardware probe, the one chooser, and a module per runtime.

``hardware.probe`` looks at the machine; ``select.choose_plan`` turns the options, the
checkpoint and that probe into a ``Plan``; ``select.build_runtime`` builds the runtime the plan
names (``torch_eager``, ``torchscript``, ``onnx_runtime``, ``onednn``), checked against the
eager model by ``base.checked``. Only ``select`` imports the runtime modules.
"""
