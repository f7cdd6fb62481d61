"""Solutions to the exercises of chapter 01 (tokenization)."""


def count_pairs(ids):
    """How often each adjacent pair occurs in the list ``ids``: {(a, b): count}."""
    counts = {}
    for pair in zip(ids, ids[1:]):  # (ids[0], ids[1]), (ids[1], ids[2]), ...
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, new_id):
    """A new list where every occurrence of ``pair`` in ``ids`` is replaced by ``new_id``, left to right."""
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2  # skip both halves of the pair: occurrences never overlap
        else:
            out.append(ids[i])
            i += 1
    return out


def bpe_encode(text, merges):
    """Encode ``text`` with ``merges`` ({(a, b): new_id}, in the order they were learned)."""
    ids = list(text.encode("utf-8"))  # start from the UTF-8 bytes, 0..255
    rank = {pair: r for r, pair in enumerate(merges)}  # earlier learned = lower rank = applied first
    while len(ids) >= 2:
        pairs = set(zip(ids, ids[1:]))
        best = min(pairs, key=lambda p: rank.get(p, float("inf")))
        if best not in rank:
            break  # no pair left that a merge knows
        ids = merge(ids, best, merges[best])
    return ids
