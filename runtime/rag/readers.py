"""Documents read into text: plain text and Markdown always, PDF when pypdf is installed.

Files are untrusted: size is bounded (MAX_BYTES) before anything is read, binary and non-UTF-8 content
is refused, and every refusal is a DocumentReadError with a one-line reason (without the path) that
Index.add records against the file. Text is returned with a byte-order mark removed and line ends normalised to "\\n";
chunk offsets refer to this text.
"""
from __future__ import annotations

import codecs
import errno
import os
import stat
from pathlib import Path

from edge_sdk.errors import DocumentReadError

MAX_BYTES = 20 * 1024 * 1024  # 20 MB: a very large text document; bounds memory while indexing one file
TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst", ".log", ".md", ".markdown", ""})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | PDF_SUFFIXES
_SNIFF = 8192  # bytes looked at for NULs: text never has them, nearly every binary format does


def is_supported(path: str | Path) -> bool:
    """Whether the file's name says it is a kind of document this module reads (no extension: maybe)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def read_bytes(path: str | Path, max_bytes: int = MAX_BYTES, follow_links: bool = True) -> bytes:
    """The file's bytes, refusing (DocumentReadError) a file that is not regular, unreadable, or too large;
    without `follow_links`, also a file that is (or is reached through) a symbolic link."""
    path = Path(path)
    try:
        st = os.stat(path) if follow_links else os.lstat(path)  # before opening: opening a FIFO would block
        if not follow_links and (stat.S_ISLNK(st.st_mode) or os.path.realpath(path) != os.path.abspath(path)):
            raise DocumentReadError("a symbolic link (or inside a linked folder): not followed")
        if not stat.S_ISREG(st.st_mode):
            raise DocumentReadError("not a regular file")
        if st.st_size > max_bytes:
            raise DocumentReadError(f"{_mb(st.st_size)} is over the {_mb(max_bytes)} limit; split it")
        # O_NOFOLLOW: a link swapped in since the check above is refused by the kernel, not followed.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
        with open(os.open(path, flags), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise DocumentReadError("not a regular file")
            data = f.read(max_bytes + 1)  # the file may have grown since
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_links:
            raise DocumentReadError("a symbolic link: not followed") from None
        raise DocumentReadError(f"cannot read it ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise DocumentReadError(f"over the {_mb(max_bytes)} limit; split it")
    return data


def decode_document(path: str | Path, data: bytes) -> str:
    """The text of a document whose bytes are `data`, by its file name's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return _pdf_text(path, data)
    if suffix not in TEXT_SUFFIXES:
        raise DocumentReadError(f"unsupported file type {suffix!r}; supported: "
                                f"{', '.join(sorted(s for s in SUPPORTED_SUFFIXES if s))} and no extension")
    return decode_text(path, data)


def read_document(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    """`decode_document(path, read_bytes(path))`: the text of the file at `path`."""
    return decode_document(path, read_bytes(path, max_bytes))


def decode_text(path: str | Path, data: bytes) -> str:
    """UTF-8 (with or without BOM) or BOM-marked UTF-16 bytes as text with "\\n" line ends."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Windows editors still write these
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise DocumentReadError("starts with a UTF-16 byte-order mark but is not UTF-16 text") from None
    else:
        if b"\0" in data[:_SNIFF]:
            raise DocumentReadError("binary content (NUL bytes), not a text document")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DocumentReadError(f"not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); "
                                    f"convert it, e.g. with iconv -f latin1 -t utf-8") from None
    if "\0" in text:
        raise DocumentReadError("binary content (NUL characters), not a text document")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pdf_text(path: Path, data: bytes) -> str:
    try:
        import pypdf
    except ImportError:
        raise DocumentReadError("reading PDF needs pypdf (pure Python): pip install pypdf") from None
    import io

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentReadError("the PDF is encrypted; save an unencrypted copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentReadError:
        raise
    except Exception as e:  # pypdf raises many types on malformed files; all mean "cannot read this PDF"
        raise DocumentReadError(f"cannot read the PDF ({type(e).__name__}: {e})") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise DocumentReadError("the PDF has no text layer (scanned pages?); run OCR on it first")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"
