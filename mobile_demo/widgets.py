"""The app's custom widgets. Their look is in chat_ui.kv; only behaviour is here."""
from __future__ import annotations

import os

from kivy.app import App
from kivy.metrics import dp
from kivy.properties import ListProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.recycleview.views import RecycleDataViewBehavior
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from .scripts import prepare

DEFAULT_FONT = Label.font_name.defaultvalue  # Kivy's Roboto
# Bubble colours per role: (background, text).
ROLE_COLOURS = {
    "user": ((0.149, 0.388, 0.922, 1), (1, 1, 1, 1)),
    "assistant": ((1, 1, 1, 1), (0.07, 0.09, 0.15, 1)),
    "notice": ((1, 0.95, 0.78, 1), (0.47, 0.21, 0.02, 1)),
}
BUBBLE_MAX_WIDTH = 0.78  # of the list's width, so left/right alignment stays visible
BUBBLE_CHROME = dp(24)   # horizontal padding inside the bubble plus the margin outside it


class RoundButton(ButtonBehavior, Label):
    """A flat button with rounded corners (Kivy's default button looks like a desktop widget)."""

    bg_color = ListProperty([0.149, 0.388, 0.922, 1])
    fg_color = ListProperty([1, 1, 1, 1])


class ChatBubble(RecycleDataViewBehavior, Widget):
    """One message. Sizes itself to its text: short replies get narrow bubbles, long ones wrap.

    RecycleView reuses these widgets for different messages, so everything is recomputed from
    ``role`` and ``text`` whenever the view is given new data.
    """

    role = StringProperty("assistant")
    text = StringProperty("")
    route = StringProperty("")  # a caption under the bubble: who answered (hybrid routing), else ""
    bubble_color = ListProperty(ROLE_COLOURS["assistant"][0])
    text_color = ListProperty(ROLE_COLOURS["assistant"][1])

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bind(width=self._fit, text=self._fit, role=self._fit, route=self._fit)

    _fitted_for = None  # (text, role, width) the label was last measured for

    def refresh_view_attrs(self, rv, index, data):
        self.index = index
        super().refresh_view_attrs(rv, index, data)
        self._fit()

    def refresh_view_layout(self, rv, index, layout, viewport):
        # The layout imposes the height it remembers for this slot (a default for a new message,
        # or a stale one while a reply grows); put back the height the text needs. The layout
        # notices the change and moves the other bubbles.
        super().refresh_view_layout(rv, index, layout, viewport)
        self._fit()

    def _fit(self, *_):
        label = self.ids.get("label")
        if label is None or self.width <= 1:
            return
        caption = self.ids.caption
        key = (self.text, self.role, self.route, self.width)
        if key == self._fitted_for:
            self.height = label.height + dp(24) + caption.height
            return
        self._fitted_for = key
        self.bubble_color, self.text_color = ROLE_COLOURS.get(self.role, ROLE_COLOURS["notice"])
        look = prepare(self.text or "…")
        label.markup = look["markup"]
        label.font_name = look["font_name"] or DEFAULT_FONT
        label.font_direction = look["font_direction"]
        label.font_script_name = look["font_script_name"]
        label.halign = look["halign"]
        label.text = look["text"]
        # With a text_size set, a label's texture is as wide as text_size even for "Hi",
        # so measure the unwrapped text first and wrap only when it is too wide.
        max_text_w = self.width * BUBBLE_MAX_WIDTH - BUBBLE_CHROME
        label.text_size = (None, None)
        label.texture_update()
        if label.texture_size[0] > max_text_w:
            label.text_size = (max_text_w, None)
            label.texture_update()
        label.size = label.texture_size
        caption.text = self.route
        caption.text_size = (self.width - dp(40), None)
        caption.texture_update()
        caption.height = caption.texture_size[1] + dp(2) if self.route else 0
        self.height = label.height + dp(24) + caption.height


class ChatScreen(Screen):
    pass


class SetupScreen(Screen):
    """Shown when there is no bundle yet, or the chosen one cannot be opened."""


class _Chooser(ModalView):
    """A picker that opens at `start_path` (when it is a folder) and reports to ``on_choose``."""

    start_path = StringProperty(os.getcwd())

    def __init__(self, on_choose, start_path=None, **kwargs):
        self._on_choose = on_choose
        if start_path and os.path.isdir(start_path):
            self.start_path = os.path.abspath(start_path)
        super().__init__(**kwargs)


class BundleChooser(_Chooser):
    """A folder picker; calls ``on_choose(path)`` with the chosen folder."""

    def choose(self, path):
        self.dismiss()
        self._on_choose(path)


class ChatSettings(ModalView):
    """Bundle, sampling and system prompt; ``apply`` hands the values back to the app."""

    def on_pre_open(self):
        app = App.get_running_app()
        self.ids.bundle.text = app.bundle_path
        self.ids.temperature.value = app.temperature
        self.ids.top_p.value = app.top_p
        self.ids.repetition_penalty.value = app.repetition_penalty
        self.ids.max_tokens.value = app.max_new_tokens
        self.ids.system.text = app.system_prompt
        self.ids.policy.text = app.policy
        self.ids.fallback_url.text = app.fallback_url
        self.ids.fallback_model.text = app.fallback_model
        self.ids.fallback_key.text = app.fallback_key
        self.ids.redact.active = app.redact
        self.ids.update_url.text, self.ids.update_name.text = app.update_url, app.update_name

    def apply(self):
        ids = self.ids
        self.dismiss()
        routing = {"policy": ids.policy.text, "fallback_url": ids.fallback_url.text,
                   "fallback_model": ids.fallback_model.text, "fallback_key": ids.fallback_key.text,
                   "redact": ids.redact.active}
        App.get_running_app().apply_settings(
            bundle_path=ids.bundle.text.strip(), temperature=round(ids.temperature.value, 2),
            max_new_tokens=int(ids.max_tokens.value), system_prompt=ids.system.text.strip(),
            top_p=round(ids.top_p.value, 2), repetition_penalty=round(ids.repetition_penalty.value, 2),
            routing=routing)


class DocumentsPanel(ModalView):
    """The user's documents: which embedder and index file, the files indexed, and the switch that makes
    answers come from them. Slow work (embedding) runs in the app's documents thread; this only asks."""

    def on_pre_open(self):
        app = App.get_running_app()
        self.ids.embedder.text = app.embedder_path
        self.ids.index.text = app.index_path

    def open_index(self):
        App.get_running_app().open_index(self.ids.embedder.text, self.ids.index.text)

    def browse_for_embedder(self):
        App.get_running_app().browse_for_bundle(self.ids.embedder)

    def add_files(self):
        app = App.get_running_app()
        # What is typed in the fields is what the files go into.
        app.embedder_path, app.index_path = self.ids.embedder.text.strip(), self.ids.index.text.strip()
        app.browse_for_documents()

    def toggle(self, active: bool):
        app = App.get_running_app()
        if active != app.use_documents:
            app.embedder_path, app.index_path = self.ids.embedder.text.strip(), self.ids.index.text.strip()
            app.set_use_documents(active)


class DocumentChooser(_Chooser):
    """A file picker for documents (several at once); calls ``on_choose(paths)``. With nothing selected,
    "Add" takes the folder shown (the index adds the documents in it)."""

    def choose(self, selection, folder):
        self.dismiss()
        self._on_choose(list(selection) or [folder])
