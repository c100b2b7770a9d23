"""Bundles over the air (device side): ``Store(DIR).pull(URL, NAME)``, then ``edge_sdk.load(Store(DIR).path(NAME))``.

See :mod:`edge_sdk.runtime.store`; the host side is ``edge-sdk publish`` (:mod:`edge_sdk.deploy.publish`).
"""
from edge_sdk.errors import StoreError
from edge_sdk.runtime.store import Installed, PullProgress, PullResult, Store, default_store_dir, smoke_prompt

__all__ = ["Store", "StoreError", "Installed", "PullProgress", "PullResult", "default_store_dir", "smoke_prompt"]
