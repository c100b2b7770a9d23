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
