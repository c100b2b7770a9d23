"""Text in any script: which font draws which characters, and which way a message runs (no Kivy here).

Kivy's default font (Roboto) has Latin, Greek and Cyrillic only: emoji, CJK, Arabic or Hebrew came
out as boxes. `prepare` turns a message into what a Label needs:

- font fallback: runs of characters the default font lacks are wrapped in `[font=...]` markup
  spans with a font that has them, found among the fonts the system (Android, Debian/Raspberry Pi
  OS, macOS, Windows) or the app ($EDGE_SDK_FONTS, a fonts/ folder beside the app) provides;
- right to left: a message whose first strong character is Arabic or Hebrew is drawn with the
  label's `font_direction="rtl"` and its script, which Kivy 2.3's SDL2 text provider shapes with
  HarfBuzz (joined Arabic letters, right-to-left order), aligned right. Kivy lays out a markup
  label word by word, left to right, so such a message is drawn without markup, in one font that
  covers the script; numbers and Latin words inside it are stored reversed so that the
  right-to-left drawing shows them the right way round.

Limits (Kivy 2.3): colour emoji fonts (CBDT bitmaps such as Noto Color Emoji) do not render, so a
monochrome emoji font is used (Symbola, Noto Emoji, Segoe UI Symbol); stock Android has none, so
emoji need one in fonts/ there. Right-to-left words inside a left-to-right message keep their font
but not their order.
"""
from __future__ import annotations

import os
import unicodedata
from functools import lru_cache
from pathlib import Path

# Most preferred first; the first file that exists is used. Android: /system/fonts; Debian and
# Raspberry Pi OS: the fonts-* packages named in .ci/install-ui-deps.sh; then macOS and Windows.
FONT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "cjk": ("/system/fonts/NotoSansCJK-Regular.ttc", "/system/fonts/DroidSansFallback.ttf",
            "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
            "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
            "/System/Library/Fonts/PingFang.ttc", "C:/Windows/Fonts/msyh.ttc"),
    "hangul": ("/system/fonts/NotoSansCJK-Regular.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
               "/usr/share/fonts/truetype/nanum/NanumGothic.ttf", "/usr/share/fonts/truetype/unfonts-core/UnDotum.ttf",
               "/System/Library/Fonts/AppleSDGothicNeo.ttc", "C:/Windows/Fonts/malgun.ttf"),
    "emoji": ("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf", "/usr/share/fonts/truetype/noto/NotoEmoji-Regular.ttf",
              "/system/fonts/NotoEmoji-Regular.ttf", "C:/Windows/Fonts/seguisym.ttf"),
    "arabic": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/system/fonts/NotoNaskhArabic-Regular.ttf",
               "/system/fonts/NotoNaskhArabicUI-Regular.ttf", "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
               "/System/Library/Fonts/GeezaPro.ttc", "C:/Windows/Fonts/arial.ttf"),
    "hebrew": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/system/fonts/NotoSansHebrew-Regular.ttf",
               "/usr/share/fonts/truetype/noto/NotoSansHebrew-Regular.ttf", "/System/Library/Fonts/ArialHB.ttc",
               "C:/Windows/Fonts/arial.ttf"),
    "devanagari": ("/system/fonts/NotoSansDevanagari-Regular.otf", "/system/fonts/NotoSansDevanagari-Regular.ttf",
                   "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf", "C:/Windows/Fonts/Nirmala.ttf"),
    "thai": ("/system/fonts/NotoSansThai-Regular.ttf", "/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf",
             "/usr/share/fonts/truetype/tlwg/Loma.ttf", "C:/Windows/Fonts/tahoma.ttf"),
    "other": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/system/fonts/NotoSansSymbols-Regular-Subsetted.ttf"),
}
# ISO 15924 names HarfBuzz takes for right-to-left scripts.
RTL_SCRIPTS = {"arabic": "Arab", "hebrew": "Hebr"}

# (first, last, script) for code points the default font lacks.
_RANGES = (
    (0x0590, 0x05FF, "hebrew"), (0xFB1D, 0xFB4F, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0E00, 0x0E7F, "thai"),
    (0x1100, 0x11FF, "hangul"), (0x3130, 0x318F, "hangul"), (0xA960, 0xA97F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0x2E80, 0x2FFF, "cjk"), (0x3000, 0x303F, "cjk"), (0x3040, 0x30FF, "cjk"), (0x3100, 0x312F, "cjk"),
    (0x3190, 0x31FF, "cjk"), (0x3200, 0x4DBF, "cjk"), (0x4E00, 0x9FFF, "cjk"), (0xF900, 0xFAFF, "cjk"),
    (0xFF00, 0xFFEF, "cjk"), (0x20000, 0x3FFFF, "cjk"),
    (0x2190, 0x21FF, "other"), (0x2300, 0x23FF, "emoji"), (0x2460, 0x24FF, "other"), (0x25A0, 0x25FF, "other"),
    (0x2600, 0x27BF, "emoji"), (0x2B00, 0x2BFF, "emoji"), (0x1F000, 0x1FAFF, "emoji"),
)
_JOINERS = {0x200D, 0xFE0E, 0xFE0F}  # ZWJ and variation selectors stay with the character before them


def script_of(ch: str) -> str | None:
    """The fallback script of a character, or None when the default font has it."""
    cp = ord(ch)
    if cp < 0x0590:
        return None
    for lo, hi, script in _RANGES:
        if lo <= cp <= hi:
            return script
    return None


def font_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("EDGE_SDK_FONTS", "").split(os.pathsep) if p]
    return dirs + [Path(__file__).parent / "fonts"]


@lru_cache(maxsize=1)
def find_fonts() -> dict[str, str]:
    """{script: font file} for every script a font was found for on this system."""
    found: dict[str, str] = {}
    for d in font_dirs():  # fonts shipped with the app win (on Android: the only emoji font there is)
        if d.is_dir():
            for f in sorted(d.iterdir()):
                name = f.name.lower()
                for script, key in (("emoji", "emoji"), ("emoji", "symbola"), ("cjk", "cjk"), ("hangul", "kr"), ("arabic", "arab"),
                                    ("hebrew", "hebr"), ("devanagari", "devanagari"), ("thai", "thai")):
                    if key in name and script not in found:
                        found[script] = str(f)
    for script, paths in FONT_CANDIDATES.items():
        if script not in found:
            hit = next((p for p in paths if os.path.isfile(p)), None)
            if hit:
                found[script] = hit
    return found


def direction(text: str) -> str:
    """"rtl" if the first strong character is right-to-left (Unicode bidi classes R and AL), else "ltr"."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return "rtl"
        if kind == "L":
            return "ltr"
    return "ltr"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")


def _runs(text: str, key) -> list[tuple[object, str]]:
    """Split `text` into maximal runs of equal key(ch); joiners stay with the run before them."""
    runs: list[tuple[object, str]] = []
    for ch in text:
        k = runs[-1][0] if runs and ord(ch) in _JOINERS else key(ch)
        if runs and runs[-1][0] == k:
            runs[-1] = (k, runs[-1][1] + ch)
        else:
            runs.append((k, ch))
    return runs


def _reverse_ltr_runs(text: str) -> str:
    """Reverse each left-to-right run (Latin words with the spaces between them; a number with its
    separators): drawn right to left, such a run then reads the right way round. Runs are kept apart
    as the Unicode bidi algorithm keeps them ("שלום 123 abc" shows as "abc 123 שלום")."""
    def kind(ch):
        b = unicodedata.bidirectional(ch)
        return "L" if b == "L" else "num" if b in ("EN", "AN", "ES", "ET", "CS") else "R" if b in ("R", "AL") else "N"

    out, pending = [], ""
    for k, run in _runs(text, kind):
        if k == "L" or (k == "N" and pending and not pending[-1].isdigit() and run.strip(" ") == ""):
            pending += run  # spaces between two words of one Latin run stay in it (given back if it ends)
            continue
        out.append(_flip(pending))
        pending = ""
        out.append(run[::-1] if k == "num" else run)
    out.append(_flip(pending))
    return "".join(out)


def _flip(run: str) -> str:
    core = run.rstrip(" ")
    return core[::-1] + run[len(core):]


def prepare(text: str, fonts: dict[str, str] | None = None) -> dict:
    """Label settings for `text`: {"text", "markup", "font_name" (or None: the default), "font_direction",
    "font_script_name", "halign"}."""
    fonts = find_fonts() if fonts is None else fonts
    if direction(text) == "rtl":
        script = next((s for s in map(script_of, text) if s in RTL_SCRIPTS), "arabic")
        return {"text": _reverse_ltr_runs(text), "markup": False, "font_name": fonts.get(script),
                "font_direction": "rtl", "font_script_name": RTL_SCRIPTS[script], "halign": "right"}
    parts = []
    for script, run in _runs(text, script_of):
        font = fonts.get(script) if script else None
        if font is None and script:  # a full CJK font has Hangul too; anything else tries the broad one
            font = fonts.get("cjk") if script == "hangul" else fonts.get("other")
        parts.append(f"[font={font}]{_escape(run)}[/font]" if font else _escape(run))
    return {"text": "".join(parts), "markup": True, "font_name": None, "font_direction": "ltr",
            "font_script_name": "Zyyy", "halign": "left"}
