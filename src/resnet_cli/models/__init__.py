"""Models: a checkpoint read without torch (``checkpoint``), the ResNet built without
transformers (``native``), and everything else through transformers (``transformers``)."""
