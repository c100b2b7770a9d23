"""Files to text: what is read, how (BOM, CRLF, UTF-16), and one-line refusals for everything else."""
from __future__ import annotations

import os
import sys
import types

import pytest

from edge_sdk.errors import DocumentReadError
from edge_sdk.runtime.rag.readers import is_supported, read_bytes, read_document


@pytest.mark.parametrize("name", ["a.txt", "a.TXT", "a.md", "a.markdown", "a.rst", "a.log", "a.text", "README"])
def test_text_kinds(tmp_path, name):
    (tmp_path / name).write_bytes(b"\xef\xbb\xbfline one\r\nline two\rline three\n")  # BOM, CRLF and a lone CR
    assert is_supported(name)
    assert read_document(tmp_path / name) == "line one\nline two\nline three\n"


def test_utf16_with_bom(tmp_path):
    (tmp_path / "w.txt").write_bytes("caf\u00e9\r\nna\u00efve".encode("utf-16"))
    assert read_document(tmp_path / "w.txt") == "caf\u00e9\nna\u00efve"


@pytest.mark.parametrize("name, data, words", [
    ("latin.txt", "caf\u00e9".encode("latin-1"), "not UTF-8 text (byte 3"),
    ("bin", b"ELF\0\1\2", "binary content"),
    ("a.docx", b"PK\3\4", "unsupported file type '.docx'"),
    ("bad16.txt", b"\xff\xfe\x00\xd8", "not UTF-16 text"),
])
def test_refusals(tmp_path, name, data, words):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DocumentReadError, match=words.replace("(", r"\(")) as e:
        read_document(tmp_path / name)
    assert "\n" not in str(e.value)


def test_size_limit_and_non_files(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"a" * 101)
    with pytest.raises(DocumentReadError, match="over the 0.0 MB limit"):
        read_bytes(tmp_path / "big.txt", max_bytes=100)
    with pytest.raises(DocumentReadError, match="not a regular file"):
        read_bytes(tmp_path)
    with pytest.raises(DocumentReadError, match="cannot read it"):
        read_bytes(tmp_path / "missing.txt")
    if hasattr(os, "mkfifo"):  # opening a FIFO would block forever: refused before opening
        os.mkfifo(tmp_path / "pipe.txt")
        with pytest.raises(DocumentReadError, match="not a regular file"):
            read_bytes(tmp_path / "pipe.txt")


def test_pdf_needs_pypdf(tmp_path, monkeypatch):
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n")
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if not installed
    with pytest.raises(DocumentReadError, match="pip install pypdf"):
        read_document(tmp_path / "a.pdf")


def test_pdf_through_pypdf(tmp_path, monkeypatch):
    class Page:
        def __init__(self, text):
            self.text = text

        def extract_text(self):
            return self.text

    class Reader:
        def __init__(self, stream):
            data = stream.read()
            if not data.startswith(b"%PDF"):
                raise ValueError("EOF marker not found")
            self.is_encrypted = b"/Encrypt" in data
            self.pages = [Page("Page one.\r\n"), Page(""), Page("Page two.")] if b"text" in data else [Page(None)]

    monkeypatch.setitem(sys.modules, "pypdf", types.SimpleNamespace(PdfReader=Reader))
    cases = {"ok.pdf": b"%PDF text", "scan.pdf": b"%PDF", "enc.pdf": b"%PDF /Encrypt", "bad.pdf": b"junk"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert read_document(tmp_path / "ok.pdf") == "Page one.\n\nPage two."
    with pytest.raises(DocumentReadError, match="no text layer"):
        read_document(tmp_path / "scan.pdf")
    with pytest.raises(DocumentReadError, match="encrypted"):
        read_document(tmp_path / "enc.pdf")
    with pytest.raises(DocumentReadError, match="cannot read the PDF .ValueError: EOF marker"):
        read_document(tmp_path / "bad.pdf")
