"""The chat app: wires the widgets to an edge-sdk chat session.

There is no model logic here. The app loads a bundle with ``edge_sdk.load``, keeps one
``model.chat()`` session (which keeps its KV cache between turns; after each reply the worker calls
``chat.settle()`` while the user reads, so a follow-up prefills only its own tokens), and shows what
``chat.stream`` yields. Everything slow runs in
``worker.py`` threads; every widget update happens on the main thread via ``Clock``.

With "answer from my documents" on, a message first goes through ``edge_sdk.rag.prepare`` (on the
documents thread, see ``documents.py``): the session is sent the grounded user message (numbered
excerpts, the instruction, the question) while the bubble shows what the user typed, and the reply's
caption names the excerpts it drew on with their evidence. When the excerpts do not back the reply, the
bubble says "Not in your documents." and the caption shows the model's draft (edge_sdk.rag's abstention).
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty

import edge_sdk
from edge_sdk.errors import BundleError, ContextLengthError
from edge_sdk.runtime.generation_defaults import GENERATION_DEFAULTS, for_copying

from . import widgets  # noqa: F401  (registers the widget classes used by the .kv file)
from .bundle_paths import EXPORT_COMMAND, candidate_dirs
from .documents import Library, answer_caption, sources_caption
from .documents_ui import DocumentsMixin, error_text
from .updates import progress_text, pull_in_background, store_version
from .worker import TurnWorker, load_in_background

KV_FILE = Path(__file__).with_name("chat_ui.kv")


def _fmt_status(*, ttft_s=None, tok_s=None, used=None, max_context=None, note=""):
    """One short line: time to first token · decode speed · context used / maximum."""
    parts = []
    if ttft_s is not None:
        parts.append(f"TTFT {ttft_s:.2f} s")
    if tok_s is not None:
        parts.append(f"{tok_s:.1f} tok/s")
    if used is not None and max_context:
        parts.append(f"context {used} / {max_context}")
    if note:
        parts.append(note)
    return "  ·  ".join(parts)


class ChatApp(DocumentsMixin, App):
    title = "edge-sdk chat"

    # UI state the .kv file binds to.
    model_name = StringProperty("edge-sdk")
    model_ready = BooleanProperty(False)
    generating = BooleanProperty(False)
    status_text = StringProperty("")
    banner_text = StringProperty("")
    banner_action = StringProperty("")      # "new_chat" shows the "Start a new chat" button
    setup_title = StringProperty("")
    setup_text = StringProperty("")

    # Settings. Sampling starts from the open bundle's defaults (its manifest, else edge-sdk's: the same
    # ones `edge-sdk chat`, the API and the server use; runtime/generation_defaults.py); what the user
    # sets in Settings is kept from then on, also for another bundle.
    bundle_path = StringProperty("")
    temperature = NumericProperty(GENERATION_DEFAULTS["temperature"])
    top_p = NumericProperty(GENERATION_DEFAULTS["top_p"])
    repetition_penalty = NumericProperty(GENERATION_DEFAULTS["repetition_penalty"])
    max_new_tokens = NumericProperty(GENERATION_DEFAULTS["max_new_tokens"])
    system_prompt = StringProperty("")
    seed = ObjectProperty(None, allownone=True)  # None: a fresh random seed per reply; an int reproduces
    # Hybrid routing (edge_sdk.hybrid): nothing leaves the device unless the user picks a policy and a
    # fallback. The key lives in memory only, for this run of the app.
    policy = StringProperty("local-only")
    fallback_url = StringProperty("")
    fallback_model = StringProperty("")
    fallback_key = StringProperty("")
    redact = BooleanProperty(False)
    route_note = StringProperty("on-device · private")  # under the model's name in the header
    # The documents' properties (embedder_path, index_path, use_documents, ...) are in DocumentsMixin.

    def __init__(self, bundle_path: str | None = None, loader=None, embedder_path: str | None = None,
                 index_path: str | None = None, rag=None, **kwargs):
        """rag: the module providing Index, prepare, before_ and after_generating (default: edge_sdk.rag, imported
        on first use)."""
        super().__init__(**kwargs)
        self.bundle_path = str(bundle_path or "")
        self.embedder_path = str(embedder_path or "")
        self.index_path = str(index_path or "")
        self._loader = loader or edge_sdk.load
        self._rag = rag
        self._library: Library | None = None
        self._turn_grounded = None      # the running turn's grounded prompt (documents on)
        self._retrieving = False        # the running turn is still searching the documents
        self.last_sources: list = []    # the sources named under the last reply (for tests)
        self.model = None
        self.chat = None
        self.worker: TurnWorker | None = None
        self._turn_id = 0          # callbacks from an abandoned turn carry an old id and are ignored
        self._load_id = 0
        self.last_result = None    # the last TurnResult, for the status line (and for tests)
        self.router = None         # a hybrid Router when the policy is not local-only
        self._sampling_chosen = False  # the user changed sampling in Settings: bundles no longer set it

    # -- lifecycle --------------------------------------------------------------------------

    def build(self):
        # Keep the composer above the on-screen keyboard on phones.
        Window.softinput_mode = "below_target"
        return Builder.load_file(str(KV_FILE))

    def on_start(self):
        if self.bundle_path:
            self.open_bundle(self.bundle_path)
        else:
            self.show_setup(missing=True)

    def on_stop(self):
        if self.worker is not None:
            self.worker.stop()
            self.worker.join(timeout=2.0)

    @property
    def chat_screen(self):
        return self.root.get_screen("chat")

    @property
    def messages(self):
        """The RecycleView's data: one dict per bubble, {"role", "text", "route"} (see _bubble)."""
        return self.chat_screen.ids.messages.data

    # -- bundle -----------------------------------------------------------------------------

    def show_setup(self, missing: bool, error: str = ""):
        looked = "\n".join(f"  • {_short(d)}" for d in candidate_dirs())
        how = (f"Make one on a computer with the export extra installed:\n\n"
               f"[b]  {edge_sdk.install_hint('export')}\n  {EXPORT_COMMAND}[/b]\n\n"
               f"then start the app from that folder, pass [b]--bundle PATH[/b], or pick the "
               f"folder below.")
        if missing:
            self.setup_title = "No model bundle found"
            self.setup_text = f"The app runs a model bundle on this device. Looked in:\n{looked}\n\n{how}"
        else:
            self.setup_title = "This bundle can't be opened"
            self.setup_text = f"[color=b91c1c]{_escape(error)}[/color]\n\n{how}"
        self.model_ready = False
        self.root.current = "setup"

    def open_bundle(self, path: str):
        path = os.path.expanduser(str(path).strip())
        if not path:
            self.show_setup(missing=True)
            return
        if self.model is not None:
            self._switch_bundle(path)
            return
        self._abandon_turn()
        self.bundle_path = path
        self.model_ready = False
        self.model, self.chat = None, None
        self.model_name = Path(path).name or path
        self.chat_screen.ids.messages.data = []
        self.banner_text, self.banner_action = "", ""
        self.status_text = "Loading the model…"
        self.root.current = "chat"
        self._load_id += 1
        load_in_background(self._loader, path, schedule=Clock.schedule_once,
                           on_loaded=partial(self._on_model_loaded, self._load_id),
                           on_error=partial(self._on_load_error, self._load_id))

    def _on_model_loaded(self, load_id, model, _dt):
        if load_id != self._load_id:
            return
        self.model = model
        self.model_name = model_display_name(model.manifest, self.model_name)
        self._use_bundle_sampling(model)
        self.model_ready = True
        self.new_chat()

    def _switch_bundle(self, path: str):
        """Load another bundle beside the working one; switch only once it has loaded. A bundle that
        cannot be opened leaves the model, the conversation and the screen as they were."""
        self._load_id += 1
        self.banner_text, self.banner_action = f"Opening {_short(path)}…", ""
        load_in_background(self._loader, path, schedule=Clock.schedule_once,
                           on_loaded=partial(self._on_switch_loaded, self._load_id, path),
                           on_error=partial(self._on_switch_error, self._load_id, path))

    def _on_switch_loaded(self, load_id, path, model, _dt):
        if load_id != self._load_id:
            return
        self._abandon_turn()
        self.bundle_path = path
        self.model, self.chat = model, None
        self.model_name = model_display_name(model.manifest, Path(path).name or path)
        self._use_bundle_sampling(model)
        self.banner_text, self.banner_action = "", ""
        self.model_ready = True
        self.new_chat()

    def _use_bundle_sampling(self, model):
        if self._sampling_chosen:
            return
        d = model.generation_defaults
        self.temperature, self.top_p = float(d["temperature"]), float(d["top_p"])
        self.repetition_penalty, self.max_new_tokens = float(d["repetition_penalty"]), int(d["max_new_tokens"])

    def _on_switch_error(self, load_id, path, exc, _dt):
        if load_id != self._load_id:
            return
        text = str(exc) if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}"
        self.banner_text = f"Could not open {_short(path)}: {text}\nStill using {self.model_name}."
        self.banner_action = ""

    def _on_load_error(self, load_id, exc, _dt):
        if load_id != self._load_id:
            return
        # BundleError messages already say what is wrong and what to do; anything else is
        # unexpected, so name its type too.
        text = str(exc) if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}"
        self.show_setup(missing=False, error=text)

    def browse_for_bundle(self, text_input):
        chooser = widgets.BundleChooser(on_choose=partial(_set_text, text_input),
                                        start_path=text_input.text or os.getcwd())
        chooser.open()

    # -- settings ---------------------------------------------------------------------------

    def open_settings(self):
        widgets.ChatSettings().open()

    def apply_settings(self, *, bundle_path, temperature, max_new_tokens, system_prompt, top_p=None,
                       repetition_penalty=None, routing=None):
        """routing: {"policy", "fallback_url", "fallback_model", "fallback_key", "redact"} (None: unchanged).
        A routing choice that cannot work (no URL, a bad one) is refused with a banner; the rest applies."""
        if routing is not None:
            self.set_routing(**routing)
        before = (self.temperature, self.max_new_tokens, self.top_p, self.repetition_penalty)
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)
        if top_p is not None:
            self.top_p = float(top_p)
        if repetition_penalty is not None:
            self.repetition_penalty = float(repetition_penalty)
        if (self.temperature, self.max_new_tokens, self.top_p, self.repetition_penalty) != before:
            self._sampling_chosen = True
        system_changed = system_prompt != self.system_prompt
        self.system_prompt = system_prompt
        if bundle_path and os.path.expanduser(bundle_path) != self.bundle_path:
            self.open_bundle(bundle_path)
        elif system_changed and self.model is not None and not self.generating:
            self.new_chat()  # the system prompt is the start of the KV cache: it needs a new chat

    def set_routing(self, *, policy, fallback_url="", fallback_model="", fallback_key="", redact=False) -> bool:
        from edge_sdk.hybrid import Router

        url, name = fallback_url.strip(), fallback_model.strip()
        try:
            router = None if policy == "local-only" else Router(
                policy, fallback_url=url or None, fallback_model=name or None, fallback_key=fallback_key or None,
                redact=bool(redact), timeout=FALLBACK_TIMEOUT_S, retries=1)
        except ValueError as e:
            self.banner_text = f"Cloud fallback not changed: {e}. Still {_policy_words(self.policy)}."
            self.banner_action = ""
            return False
        if self.router is not None:
            self.router.close()  # its fallback threads end once a call still running (if any) is done
        self.router = router
        self.policy, self.fallback_url, self.fallback_model = policy, url, name
        self.fallback_key, self.redact = fallback_key, bool(redact)
        name = self.fallback_name if len(self.fallback_name) <= 20 else self.fallback_name[:19] + "…"  # one line
        self.route_note = {"local-only": "on-device · private", "auto": f"on-device · {name} if unsure",
                           "cloud-first": f"{name} first · on-device backup"}[policy]
        return True

    @property
    def fallback_name(self) -> str:
        """The fallback as a caption names it: its model, or its host."""
        return self.fallback_model or _host(self.fallback_url) or "the fallback"

    # -- conversation -----------------------------------------------------------------------

    def new_chat(self):
        if self.model is None or self.generating:
            return
        self.chat = self.model.chat(system=self.system_prompt or None)
        self.chat_screen.ids.messages.data = []
        self.banner_text, self.banner_action = "", ""
        self.status_text = f"New chat  ·  up to {self.model.max_context} tokens of context"
        self.chat_screen.ids.prompt.focus = True

    def send(self, text: str | None = None):
        prompt = self.chat_screen.ids.prompt
        text = (prompt.text if text is None else text).strip()
        if not text or self.generating or self.chat is None:
            return
        prompt.text = ""
        # Keep typing where you were: pressing Send takes the focus away from the input.
        Clock.schedule_once(partial(_focus, prompt), 0)
        self.messages.append(_bubble("user", text))
        self.messages.append(_bubble("assistant", ""))
        self.banner_text, self.banner_action = "", ""
        self.generating = True
        self._scroll_to_bottom(force=True)
        self._turn_id += 1
        tid = self._turn_id
        self._turn_grounded = None
        if self.use_documents:
            self._retrieving = True
            self.status_text = "Searching your documents…"
            # The conversation so far counts against the context: excerpts are dropped until it all fits.
            self.library.prepare(self.model, text, k=int(self.retrieval_k), history=self.chat.messages,
                                 reply_tokens=int(self.max_new_tokens),
                                 on_done=partial(self._on_retrieved, tid), on_error=partial(self._on_retrieval_error, tid))
            return
        self.status_text = "Reading your message…"
        self._start_turn(tid, text)

    def _on_retrieved(self, tid, grounded, _dt):
        if tid != self._turn_id:
            return
        self._retrieving = False
        skipped = self.library.skip(grounded) if grounded.sources else None
        if skipped is not None:  # nothing close to the question: the model is not asked
            self.generating = False
            self.last_sources = list(skipped.sources)
            self.messages[-1] = _bubble("assistant", skipped.text, answer_caption(skipped))
            self.status_text = "Not in your documents"
            return
        self._turn_grounded = grounded
        n = len(grounded.sources)
        left_out = f", {grounded.dropped} left out to fit" if getattr(grounded, "dropped", 0) else ""
        if n:
            self.status_text = f"Reading your message and {n} excerpt{'s' * (n != 1)}{left_out}…"
        elif getattr(grounded, "dropped", 0):
            self.status_text = "No room left in this chat for excerpts (start a new chat for them); answering without…"
        else:
            self.status_text = "Nothing in your documents matches; answering without them…"
        self._start_turn(tid, grounded.user_message)

    def _on_retrieval_error(self, tid, exc, _dt):
        if tid != self._turn_id:
            return
        self._retrieving = False
        self.generating = False
        if self.messages and self.messages[-1]["role"] == "assistant" and not self.messages[-1]["text"]:
            self.messages.pop()
        self.status_text = "not sent"
        if isinstance(exc, ContextLengthError):  # the conversation leaves no room for the question and a reply
            self._offer_new_chat("This conversation has filled the model's memory")
            return
        self.banner_text = f"Could not search your documents: {error_text(exc)}"
        self.banner_action = ""

    def _start_turn(self, tid: int, text: str):
        """Stream the reply to `text` (the user's words, or the grounded message holding them)."""
        penalty = float(self.repetition_penalty)
        grounded = self._turn_grounded
        if grounded is not None and grounded.sources and not self._sampling_chosen:
            # An answer from the documents copies from its excerpts: as rag.ask, no penalty unless the user set one.
            penalty = for_copying({"repetition_penalty": None})["repetition_penalty"]
        self.worker = TurnWorker(
            self.chat, text, schedule=Clock.schedule_once,
            on_text=partial(self._on_stream_text, tid), on_done=partial(self._on_turn_done, tid),
            on_error=partial(self._on_turn_error, tid),
            max_new_tokens=int(self.max_new_tokens), temperature=float(self.temperature), top_p=float(self.top_p),
            repetition_penalty=penalty, seed=self.seed, router=self.router).start()

    def stop(self):
        if self._retrieving and self.generating:
            # Still searching: nothing was sent to the session, so the turn simply ends here.
            self._retrieving = False
            self._turn_id += 1
            self.generating = False
            self.messages[-1] = _bubble("assistant", "(stopped before the first word)")
            self.status_text = "stopped"
            return
        if self.worker is not None and self.generating:
            self.worker.stop()
            self.status_text = "Stopping…"

    def _abandon_turn(self):
        """Stop a running turn whose results nobody will look at (new bundle)."""
        if self.worker is not None:
            self.worker.stop()
        self._turn_id += 1
        self._retrieving = False
        self.generating = False

    def _on_stream_text(self, tid, progress, _dt):
        if tid != self._turn_id:
            return
        if progress.text or progress.replace:
            last = self.messages[-1]
            text = progress.text if progress.replace else last["text"] + progress.text
            # Assigning a new dict (not mutating the old one) is what makes RecycleView refresh.
            self.messages[-1] = _bubble("assistant", text, last.get("route", ""))
            self._scroll_to_bottom()
        if self.worker is not None and self.worker.stop_requested:
            return  # keep "Stopping…" visible
        if progress.asking:
            why = {"low_confidence": "the answer here was unsure", "context": "too long for this device",
                   "cloud-first": "cloud first"}.get(progress.asking, progress.asking)
            self.messages[-1] = _bubble("assistant", self.messages[-1]["text"], f"asking {self.fallback_name}…")
            self.status_text = f"Asking {self.fallback_name} ({why})…"
            return
        self.status_text = _fmt_status(ttft_s=progress.ttft_s, tok_s=progress.decode_tok_s,
                                       used=progress.tokens_used,
                                       max_context=self.model.max_context)

    def _on_turn_done(self, tid, result, _dt):
        if tid != self._turn_id:
            return
        self.generating = False
        self.last_result = result
        stats = result.stats
        text = self.messages[-1]["text"] or ("(stopped before the first word)" if result.cancelled else "(no reply)")
        grounded, under = self._turn_grounded, ""
        self.last_sources = []
        if grounded is not None and grounded.sources:
            # A stopped reply is not judged (it was cut short); it shows what it was given.
            answer = self.library.judge(grounded, text) if not result.cancelled else None
            if answer is not None and answer.abstained:
                text = answer.text
            self.last_sources = list(answer.cited or answer.sources) if answer else list(grounded.sources)
            under = answer_caption(answer) if answer else sources_caption(self.last_sources)
        caption = "\n".join(c for c in (route_caption(result.route, self.fallback_name), under) if c)
        self.messages[-1] = _bubble("assistant", text, caption)
        self._scroll_to_bottom()  # the last pieces (and a caption) can land after the last scroll: follow them too
        if result.route and result.route.get("target") == "cloud":
            self.status_text = _fmt_status(used=result.tokens_used, max_context=self.model.max_context,
                                           note=f"answered by {self.fallback_name} in {result.elapsed_s:.1f} s")
            return
        reason = getattr(stats, "stop_reason", "")
        note = {"cancelled": "stopped", "length": "max tokens reached", "context": "context full"}.get(reason, "")
        if result.cancelled:
            note = "stopped"
        if reason == "context":
            # The reply ran into the context limit: nothing more fits, not even a short question.
            self._offer_new_chat("The reply filled the model's memory")
        self.status_text = _fmt_status(ttft_s=getattr(stats, "ttft_s", None),
                                       tok_s=getattr(stats, "decode_tok_s", None),
                                       used=result.tokens_used, max_context=self.model.max_context,
                                       note=note)

    def _on_turn_error(self, tid, exc, _dt):
        if tid != self._turn_id:
            return
        self.generating = False
        if self.messages and self.messages[-1]["role"] == "assistant" and not self.messages[-1]["text"]:
            self.messages.pop()
        if isinstance(exc, ContextLengthError):
            self._offer_new_chat("This conversation has filled the model's memory")
        else:
            self.banner_text = f"The reply failed: {type(exc).__name__}: {exc}"
            self.banner_action = ""
        self.status_text = _fmt_status(used=getattr(self.chat, "tokens_used", None),
                                       max_context=self.model.max_context, note="not sent")

    def _offer_new_chat(self, what: str):
        self.banner_text = f"{what} ({self.model.max_context} tokens). Start a new chat to keep going."
        self.banner_action = "new_chat"

    # -- updates (edge_sdk.store) ----------------------------------------------------------
    # A bundle run from a store shows its version beside its name, and Settings offers to pull a newer one
    # from where it came from (mobile_demo/updates.py); the new version opens beside the running one.
    update_url = StringProperty("")
    update_name = StringProperty("")
    updating = BooleanProperty(False)

    def on_bundle_path(self, *_):
        found = store_version(self.bundle_path) if self.bundle_path else None
        if found is not None:
            self.update_url, self.update_name = found.url or self.update_url, found.name
        if not getattr(self, "_version_bound", False):
            self._version_bound = True
            self.fbind("model_name", self._show_version)

    def _show_version(self, *_):
        found = store_version(self.bundle_path) if self.bundle_path else None
        if found is not None and not self.model_name.endswith(f" · {found.version}"):
            self.model_name = f"{self.model_name} · {found.version}"

    def pull_update(self, url: str, name: str, store_dir: str | None = None):
        """Pull `name` from `url` into the store this bundle came from (else the default store), then open it."""
        url, name = url.strip(), name.strip()
        if self.updating or not url or not name:
            if not self.updating:
                self.banner_text, self.banner_action = "Give the update URL and the model's name in Settings.", ""
            return
        found = store_version(self.bundle_path) if self.bundle_path else None
        from edge_sdk.store import default_store_dir

        store_dir = store_dir or (found.root if found else default_store_dir())
        self.update_url, self.update_name, self.updating = url, name, True
        self.banner_text, self.banner_action = f"Checking for an update of {name}…", ""
        pull_in_background(store_dir, url, name, schedule=Clock.schedule_once, on_progress=self._on_update_progress,
                           on_done=self._on_update_done, on_error=self._on_update_error)

    def _on_update_progress(self, progress, _dt):
        self.banner_text, self.banner_action = progress_text(progress), ""

    def _on_update_done(self, result, _dt):
        self.updating = False
        if result.up_to_date and str(result.path) == str(Path(self.bundle_path).resolve()):
            self.banner_text = f"{result.name} {result.version} is the newest version: nothing to download."
            return
        got = f"{result.bytes_downloaded / 1e6:.1f} MB downloaded" if not result.up_to_date else "already here"
        self.banner_text = f"{result.name} {result.version} ready ({got}); opening it…"
        self.open_bundle(str(result.path))  # loads beside the running model; switches once it has loaded

    def _on_update_error(self, exc, _dt):
        self.updating = False
        self.banner_text = f"Update failed: {error_text(exc)}\nStill using {self.model_name}."
        self.banner_action = ""

    def _scroll_to_bottom(self, force: bool = False):
        rv = self.chat_screen.ids.messages
        # Follow the reply while the user is reading the end - which includes a conversation that
        # still fit on the screen (scroll_y is 1 then, not 0): a long first reply must be followed
        # too. Someone who scrolled back up-thread is not yanked down.
        fitted = rv.layout_manager.height <= rv.height + 1
        if force or fitted or rv.scroll_y <= 0.05:
            Clock.schedule_once(partial(_scroll_end, rv), 0)


FALLBACK_TIMEOUT_S = 20.0  # for the whole call (a retry included): then the device answers


def _bubble(role: str, text: str, route: str = "") -> dict:
    """One message for the RecycleView. Every key, every time: a recycled bubble keeps a key left out."""
    return {"role": role, "text": text, "route": route}


def route_caption(route: dict | None, fallback: str) -> str:
    """The line under an answer saying who gave it and why ("" without hybrid routing)."""
    if not route or route.get("reason") == "local-only":
        return ""
    reason, score = route.get("reason"), route.get("confidence")
    sure = f"confidence {score:.2f}" if score is not None else ""
    if route.get("target") == "cloud":
        why = {"low_confidence": f"unsure here ({score:.2f})" if score is not None else "unsure here",
               "context": "too long for this device", "cloud-first": "", "caller": ""}.get(reason, reason or "")
        parts = [f"answered by {fallback}", why]
        if route.get("redacted"):
            parts.append(f"{route['redacted']} personal item{'s' * (route['redacted'] != 1)} sent as placeholders")
    else:
        why = {"confident": sure, "personal_data": f"personal data kept here, {sure}",
               "fallback_failed": f"{fallback} unreachable", "low_confidence": f"{fallback} unreachable, {sure}"
               }.get(reason, sure)
        parts = ["on device", why]
    return "  ·  ".join(p for p in parts if p)


def _policy_words(policy: str) -> str:
    return {"local-only": "answering on this device only", "auto": "asking the fallback when unsure",
            "cloud-first": "asking the fallback first"}.get(policy, policy)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _scroll_end(rv, _dt):
    # scroll_y 0 is the bottom; a conversation shorter than the screen starts at the top instead.
    rv.scroll_y = 0 if rv.layout_manager.height > rv.height else 1


def _focus(text_input, _dt):
    text_input.focus = True


def _set_text(text_input, value):
    text_input.text = value


def model_display_name(manifest: dict, fallback: str) -> str:
    """The model's name for the header: the manifest's, without the recipe and flavour the export appended
    (a device build keeps its bundle in a folder called `bundle`, so the folder name says nothing)."""
    name = str(manifest.get("name") or fallback)
    suffix = f"-{manifest.get('quantization', {}).get('recipe')}-{manifest.get('graph', {}).get('flavour')}"
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name


def _short(path) -> str:
    """A path as a person would type it: the home folder as ~."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text.startswith(home + os.sep) else text


def _escape(text: str) -> str:
    """Escape Kivy markup so an error message shows literally."""
    return text.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")
