"""Stop strings over streamed text pieces."""
from __future__ import annotations

import random

import pytest

from edge_sdk.runtime.stopping import StopStrings


def run(stops, pieces):
    """Feed all pieces; return (emitted text, stopped)."""
    s = StopStrings(stops)
    out = []
    for p in pieces:
        emit, stopped = s.feed(p)
        out.append(emit)
        if stopped:
            return "".join(out), True
    out.append(s.flush())
    return "".join(out), False


def reference(stops, text):
    """Offline answer: cut at the start of the stop string that ends first (ties: the longer)."""
    best = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or (i + len(s), i) < (best[0], best[1])):
            best = (i + len(s), i)
    return (text[: best[1]], True) if best else (text, False)


def test_no_stop_passes_everything_through():
    assert run(["</s>"], ["Hello", " world"]) == ("Hello world", False)


def test_stop_inside_one_piece():
    assert run(["</s>"], ["Hi</s>after"]) == ("Hi", True)


def test_stop_split_over_many_pieces():
    s = StopStrings(["<|im_end|>"])
    assert s.feed("Paris.") == ("Paris.", False)
    assert s.feed("<|") == ("", False)  # could be the start of the stop string: held
    assert s.feed("im") == ("", False)
    assert s.feed("_en") == ("", False)
    assert s.feed("d|>tail") == ("", True)
    assert s.feed("more") == ("", True)  # stays stopped
    assert s.flush() == ""


def test_false_start_is_released():
    s = StopStrings(["<|im_end|>"])
    assert s.feed("a <|im") == ("a ", False)
    assert s.feed("age") == ("<|image", False)


def test_flush_releases_held_text():
    s = StopStrings(["###"])
    assert s.feed("x ##") == ("x ", False)
    assert s.flush() == "##"
    assert s.flush() == ""


def test_overlapping_prefixes():
    # "ab" appears inside the held "aab"; the real stop "abc" starts one character later.
    assert run(["abc"], ["a", "a", "b", "c"]) == ("a", True)
    assert run(["abab"], ["ab", "a", "bab"]) == ("", True)
    assert run(["abab"], ["aba", "c"]) == ("abac", False)
    # several stop strings sharing a prefix
    assert run(["User:", "Use it"], ["I ", "Us", "e it"]) == ("I ", True)


def test_stop_that_ends_first_wins():
    # "bc" completes before "abcd" would, whatever the split.
    for pieces in (["abcd"], ["a", "b", "c", "d"], ["ab", "cd"]):
        assert run(["abcd", "bc"], ["x"] + pieces) == ("xa", True)


def test_random_splits_match_offline_reference():
    rng = random.Random(0)
    alphabet = "ab<|>"
    stop_sets = [["<|>"], ["ab", "ba"], ["aab", "ab<", "|>|"], ["abab", "b"], ["a<|b", "<|"]]
    for _ in range(2000):
        stops = rng.choice(stop_sets)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        cuts = sorted(rng.sample(range(len(text) + 1), rng.randint(0, len(text))))
        pieces = [text[i:j] for i, j in zip([0] + cuts, cuts + [len(text)])]
        assert run(stops, pieces) == reference(stops, text), (stops, pieces)


def test_empty_pieces_and_no_stops():
    assert run([], ["a", "", "b"]) == ("ab", False)
    assert run(["x"], ["", ""]) == ("", False)


@pytest.mark.parametrize("bad", [[""], [None], ["ok", 3], "</s>"])
def test_invalid_stops_rejected(bad):
    with pytest.raises(ValueError):
        StopStrings(bad)


def test_random_stop_sets_match_offline_reference():
    """Stop strings with self-overlap ("aab", "abab", "aaa"): the cases a matcher's fallback rule gets wrong."""
    rng = random.Random(1)
    for _ in range(3000):
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 24)))
        cuts = sorted(rng.sample(range(len(text) + 1), rng.randint(0, len(text))))
        pieces = [text[i:j] for i, j in zip([0] + cuts, cuts + [len(text)])]
        assert run(stops, pieces) == reference(stops, text), (stops, pieces)


def test_reset_and_flush_start_a_new_stream():
    s = StopStrings(["abc"])
    assert s.feed("xab") == ("x", False)
    assert s.flush() == "ab"
    assert s.feed("c") == ("c", False)  # "ab" was released: it cannot complete a stop any more
    s.reset()
    assert s.feed("ab") == ("", False) and s.feed("c") == ("", True)


def _peak_bytes(stops) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        matcher = StopStrings(stops)
        for piece in ("a" * 50, "b", "a" * 700, "c"):
            matcher.feed(piece)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_linear_in_the_stop_strings_length():
    """Issue 24: the matcher kept every prefix of every stop string (memory ~ length squared: a 60 KB stop
    took the server to 1.85 GB). Four times the length must cost about four times the memory, not sixteen."""
    from edge_sdk.runtime.stopping import MAX_STOP_CHARS, MAX_STOP_STRINGS

    rng = random.Random(2)

    def stops(n):
        return ["".join(rng.choice("ab") for _ in range(n)) for _ in range(MAX_STOP_STRINGS)]

    small, large = _peak_bytes(stops(MAX_STOP_CHARS // 4)), _peak_bytes(stops(MAX_STOP_CHARS))
    assert large < 6 * small, (small, large)
    assert large < 2 << 20, large  # 16 strings of 1024 characters: well under 2 MB (every prefix: ~9 MB)


def test_limits_on_count_and_length():
    from edge_sdk.runtime.stopping import MAX_STOP_CHARS, MAX_STOP_STRINGS

    StopStrings(["x" * MAX_STOP_CHARS] + [str(i) for i in range(MAX_STOP_STRINGS - 1)])  # at the limits: fine
    with pytest.raises(ValueError, match=f"at most {MAX_STOP_CHARS} characters"):
        StopStrings(["</s>", "x" * (MAX_STOP_CHARS + 1)])
    with pytest.raises(ValueError, match=f"at most {MAX_STOP_STRINGS} stop strings"):
        StopStrings([str(i) for i in range(MAX_STOP_STRINGS + 1)])
