"""`edge_sdk.rag`: the local document index and grounded answers (implemented in edge_sdk.runtime.rag)."""
from edge_sdk.runtime.rag import *  # noqa: F401,F403
from edge_sdk.runtime.rag import __all__  # noqa: F401
