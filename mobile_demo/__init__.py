"""A private on-device chat app (Kivy) on top of the edge-sdk runtime.

Run it with ``python -m mobile_demo [--bundle PATH]`` from the repository, or
``python -m edge_sdk.mobile_demo`` where edge-sdk is installed (it ships as ``edge_sdk.mobile_demo``;
imports inside the app are relative so both names work). The app holds no model logic: it loads a
bundle with ``edge_sdk.load`` and shows what a chat session streams.
"""
