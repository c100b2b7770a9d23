"""The document index against hostile files and hostile index files (issue 24): links out of an indexed folder
are not followed, a crafted index with wrong-typed fields is a clear error in every command that reads it, file
names with terminal escapes are printed escaped, and "unchanged" means the same bytes (sha256), not the same size."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest

import edge_sdk
from edge_sdk.cli import main
from edge_sdk.errors import DocumentReadError
from edge_sdk.rag import Index
from edge_sdk.runtime.rag.readers import read_bytes

from .fake_embedder import FakeEmbedder

SECRET = "zebra-quasar-ultraviolet private key material"


@pytest.fixture
def outside(tmp_path):
    """A private folder beside the indexed one: ~/.ssh, say."""
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "id_ed25519").write_text(SECRET + "\n")
    (secret / "wallet.md").write_text(SECRET + " wallet\n")
    return secret


def test_links_out_of_an_indexed_folder_are_not_followed(tmp_path, docs, outside, embedder):
    (docs / "notes" / "key").symlink_to(outside / "id_ed25519")  # a file link, no extension: a text document
    (docs / "notes" / "deep" / "keys.md").symlink_to(outside / "wallet.md")
    (docs / "linked").symlink_to(outside, target_is_directory=True)
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        report = index.add([docs])
        assert sorted(p.rsplit("/docs/", 1)[1] for p in report.links) == ["linked", "notes/deep/keys.md", "notes/key"]
        assert len(report.added) == 3 and report.ok and report.as_dict()["links"] == report.links
        assert not any("private" in f.path for f in index.files())
        assert all("zebra" not in hit.text for hit in index.search(SECRET, k=10))
        # A file named on its own is taken as it resolves: the user chose it.
        report = index.add([docs / "notes" / "key"])
        assert report.added == [str(outside / "id_ed25519")]


def test_a_link_swapped_in_after_the_walk_is_refused(tmp_path, outside):
    """read_bytes(follow_links=False), what Index.add reads with: the kernel refuses a link (O_NOFOLLOW), and a
    file reached through a linked folder is refused too."""
    (tmp_path / "note.md").symlink_to(outside / "wallet.md")
    (tmp_path / "folder").symlink_to(outside, target_is_directory=True)
    for path in (tmp_path / "note.md", tmp_path / "folder" / "wallet.md"):
        with pytest.raises(DocumentReadError, match="not followed"):
            read_bytes(path, follow_links=False)
        assert SECRET.encode() in read_bytes(path)  # followed when asked to (a file the user named)


def test_unchanged_means_the_same_bytes_not_the_same_size(tmp_path, docs, embedder):
    cats = docs / "notes" / "cats.txt"
    with Index.open(tmp_path / "x.index", embedder, create=True) as index:
        index.add([docs])
        before = cats.read_text()
        after = before.replace("Cats", "Dogs")
        assert len(after.encode()) == len(before.encode()) and after != before
        cats.write_text(after)
        stat = os.stat(cats)
        os.utime(cats, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        report = index.add([docs])
        assert [p.rsplit("/", 1)[1] for p in report.updated] == ["cats.txt"] and len(report.unchanged) == 2
        assert "Dogs" in index.search("dogs sleep purr", k=1)[0].text


# -- the CLI ----------------------------------------------------------------------------------------

@pytest.fixture
def bundles(tmp_path, monkeypatch):
    """'minilm' loads as the fake embedder; any other bundle as the tiny real decoder (edge-sdk ask needs one)."""
    (tmp_path / "minilm").mkdir()
    real_load = edge_sdk.load
    decoder = {}

    def load(path, *args, **kwargs):
        if str(path).rstrip("/").endswith("minilm"):
            return FakeEmbedder(name="minilm", seed="minilm", bundle_dir=path)
        if "model" not in decoder:
            decoder["model"] = real_load(path, *args, **kwargs)
        return decoder["model"]

    monkeypatch.setattr(edge_sdk, "load", load)
    return tmp_path


def run(capsys, *argv):
    code = main([str(a) for a in argv])  # an exception here (a traceback) fails the test
    out, err = capsys.readouterr()
    return code, out, err


HOSTILE_NAMES = {"esc\x1b[2J\x1b]0;pwned\x07.md": "esc\\x1b[2J\\x1b]0;pwned\\x07.md",
                 "csi\x9b31m.md": "csi\\x9b31m.md",
                 "evil\u202egpj.md": "evil\\u202egpj.md",
                 "two\nlines.md": "two\\x0alines.md",
                 "isolate\u2066x\u2069.md": "isolate\\u2066x\\u2069.md"}


def test_file_names_with_terminal_escapes_are_printed_escaped(capsys, tmp_path, docs, bundles, tiny_bundle):
    for name in HOSTILE_NAMES:
        (docs / name).write_text(f"the {name.split('.')[0][:3]} document about rent and routers\n")
    os.mkdir(os.fsencode(docs) + b"/latin\xe9")  # a folder whose name is not UTF-8
    (docs / "latin\udce9" / "notes.md").write_text("rent is due on the first\n")
    index = tmp_path / "docs.index"
    outputs = [run(capsys, "index", "add", index, docs, "--embedder", bundles / "minilm"),
               run(capsys, "index", "add", index, docs, "--json"),
               run(capsys, "index", "ls", index), run(capsys, "index", "ls", index, "--json"),
               run(capsys, "index", "search", index, "document about rent and routers", "-k", "9"),
               run(capsys, "index", "search", index, "document about rent", "-k", "9", "--json"),
               run(capsys, "ask", tiny_bundle, "--index", index, "rent and routers", "-k", "9", "--max-new-tokens", "2"),
               run(capsys, "ask", tiny_bundle, "--index", index, "rent", "-k", "9", "--max-new-tokens", "2", "--json"),
               run(capsys, "index", "rm", index, *(docs / n for n in HOSTILE_NAMES), docs / "gone\x1b[31m.md")]
    for code, out, err in outputs:
        text = out.split("\nSources")[-1] + err  # (an answer is model output, not a name: it is not escaped)
        assert not any(c in text for c in "\x1b\x07\x9b\u202e\u2066\u2069\udce9"), repr(text[:300])
    add, ls, search, ask, rm = outputs[0], outputs[2], outputs[4], outputs[6], outputs[8]
    assert add[0] == 1 and "latin\\xe9/notes.md: its name is not valid UTF-8" in add[1]  # failed, not a crash
    for printed in (add[2], ls[1], search[1], rm[1]):  # progress, listing, hits, removals
        assert all(shown in printed for shown in HOSTILE_NAMES.values()), printed
    assert any(shown in ask[1].split("\nSources")[-1] for shown in HOSTILE_NAMES.values()), ask[1]
    listed = {os.path.basename(f["path"]) for f in json.loads(outputs[3][1])["files"]}
    assert listed >= set(HOSTILE_NAMES)  # JSON escapes them and still decodes to the real names
    assert rm[0] == 1 and "gone\\x1b[31m.md" in rm[2]


def test_error_messages_are_printed_escaped(capsys, tmp_path):
    code, _, err = run(capsys, "index", "ls", tmp_path / "no\x1b]0;title\x07.index")
    assert code == 2 and "\x1b" not in err and "no\\x1b]0;title\\x07.index" in err


# A crafted index: SQLite keeps any type in any column. (what is damaged, the SQL that damages it)
DAMAGE = [
    ("files.added", "UPDATE files SET added = 'yesterday'"),
    ("files.added", "UPDATE files SET added = 1e300"),
    ("files.chunks", "UPDATE files SET chunks = 'many'"),
    ("files.tokens", "UPDATE files SET tokens = -5"),
    ("files.path", "UPDATE files SET path = X'00ff' WHERE id = (SELECT MIN(id) FROM files)"),
    ("files.sha256", "UPDATE files SET sha256 = X'01'"),
    ("chunks.text", "UPDATE chunks SET text = X'1b5b326a'"),
    ("chunks.chunk_no", "UPDATE chunks SET chunk_no = 'first'"),
    ("chunks.start_char", "UPDATE chunks SET start_char = 1.5"),
    ("meta chunk_tokens", "UPDATE meta SET value = '\"abc\"' WHERE key = 'chunk_tokens'"),
    ("meta overlap_tokens", "UPDATE meta SET value = '999999' WHERE key = 'overlap_tokens'"),
    ("meta dim", "UPDATE meta SET value = '\"64\"' WHERE key = 'dim'"),
    ("meta embedder", "UPDATE meta SET value = '[1, 2]' WHERE key = 'embedder'"),
    ("meta embedder", "UPDATE meta SET value = '{\"name\": 5, \"fingerprint\": \"x\"}' WHERE key = 'embedder'"),
    ("meta embedder_bundle", "UPDATE meta SET value = '5' WHERE key = 'embedder_bundle'"),
    ("vector", "UPDATE vectors SET vector = 'not a blob'"),
]


@pytest.mark.parametrize("field, sql", DAMAGE, ids=[f"{f}={s.split('=', 1)[1].split(' WHERE')[0].strip()}"
                                                    for f, s in DAMAGE])
def test_a_crafted_index_is_a_clear_error_in_every_command(capsys, tmp_path, docs, bundles, tiny_bundle, field, sql):
    index = tmp_path / "docs.index"
    assert run(capsys, "index", "add", index, docs, "--embedder", bundles / "minilm", "--quiet")[0] == 0
    with sqlite3.connect(index) as conn:
        conn.execute(sql)
    commands = {"add": ["index", "add", index, docs, "--quiet"], "ls": ["index", "ls", index],
                "ls --json": ["index", "ls", index, "--json"], "search": ["index", "search", index, "rent"],
                "ask": ["ask", tiny_bundle, "--index", index, "rent", "--max-new-tokens", "2"],
                "rm": ["index", "rm", index, docs / "notes"]}  # (last: it empties the index)
    reported = []
    for name, argv in commands.items():
        code, out, err = run(capsys, *argv)
        if code == 2:
            assert err.startswith("error: ") and "is a damaged document index" in err and "rebuild it" in err, err
            reported.append(name)
        else:  # a command that does not read the damaged field works as usual
            assert code in (0, 1) and "error: " not in err.replace("error: 1 file(s)", ""), (name, err)
    assert {"ls", "search"} & set(reported), reported  # the damage is met where that field is read
    if field.startswith("meta"):
        assert len(reported) == len(commands), reported  # every command reads the metadata
