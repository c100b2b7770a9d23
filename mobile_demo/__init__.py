"""A private on-device chat app (Kivy) on top of the edge-sdk runtime.

Run it with ``python -m mobile_demo [--bundle PATH]``. The app holds no model logic: it loads a
bundle with ``edge_sdk.load`` and shows what a chat session streams.
"""
