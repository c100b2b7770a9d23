"""`edge_sdk.hybrid`: hybrid edge/cloud routing (the implementation lives in edge_sdk.runtime.hybrid)."""
from edge_sdk.runtime.hybrid import *  # noqa: F401,F403
from edge_sdk.runtime.hybrid import __all__  # noqa: F401
