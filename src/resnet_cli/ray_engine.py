"""``python -m resnet_cli.ray_engine merge DIR``: the old name of ``resnet-classify merge``,
kept so that scripts written for it still work. The Ray engine itself is
``resnet_cli.pipeline.ray_job``."""

from __future__ import annotations

if __name__ == "__main__":
    from .cli import merge_main

    merge_main()
