"""How a forward pass runs: the hardware probe, the one chooser, and a module per runtime.

``hardware.probe`` looks at the machine; ``select.choose_plan`` (pure: it imports no runtime)
turns the options, the checkpoint and that probe into a ``Plan``; ``classifier.load_classifier``
loads the model and has ``build`` make what the plan names (``torch_eager``, ``torchscript``,
``onnx_runtime``, ``onednn``, ``cuda_graph``, ``int8``), checked against the eager model by
``base.checked``, or starts from the runtime ``cache`` without torch (``quick_start``).
"""
