"""The resolved direct calls of one binary, and the two questions the call graph asks of them:
the calls made between two addresses (one function's body) and the calls made to one node.

A node is a function start (int) or an imported name (str). Two stores give the same answers:
`ListCalls`, (site, node, tail) tuples (the pure pipelines), and `ArrayCalls`, three numpy columns
sorted by site, an imported name kept as a negative code (~its index in `names`). A large binary
holds hundreds of thousands of calls and a question reads a few of them: the columns make tuples
only for the rows a question returns.
"""

from __future__ import annotations

import bisect
from itertools import compress, groupby, repeat
from operator import itemgetter, not_


class ListCalls:
    """(site, node, tail) tuples sorted by site."""

    def __init__(self, calls: list):
        self._calls = calls
        self._sites = list(map(itemgetter(0), calls))
        self._by_name = None  # imported name → its calls, in the order first called
        self._numbered = self._numbered_keys = None  # calls to functions, by target; their targets

    def __len__(self) -> int:
        return len(self._calls)

    def rows(self) -> list:
        return list(self._calls)

    def between(self, lo: int, hi: int) -> list:
        return self._calls[bisect.bisect_left(self._sites, lo):bisect.bisect_left(self._sites, hi)]

    def _index(self) -> None:
        """The calls indexed by sorting, not by a Python loop over them: the calls to functions by
        their address (a binary search answers a node), those to imports grouped by name."""
        if self._by_name is not None:
            return
        calls = self._calls
        named = list(map(isinstance, map(itemgetter(1), calls), repeat(str)))
        numbered = sorted(compress(calls, map(not_, named)), key=itemgetter(1))  # stable: sites stay in order
        self._numbered, self._numbered_keys = numbered, list(map(itemgetter(1), numbered))
        by_name = sorted(compress(calls, named), key=itemgetter(1))
        groups = {name: list(group) for name, group in groupby(by_name, key=itemgetter(1))}
        self._by_name = {name: groups[name] for name in dict.fromkeys(map(itemgetter(1), compress(calls, named)))}

    def to(self, node) -> list:
        self._index()
        if not isinstance(node, int):
            return self._by_name.get(node, [])
        keys = self._numbered_keys
        return self._numbered[bisect.bisect_left(keys, node):bisect.bisect_right(keys, node)]

    def called_names(self) -> list:
        """The imported names called, in the order of their first call."""
        self._index()
        return list(self._by_name)


# a scan of the node column costs ~1/20 of sorting it: most graphs are asked about fewer nodes
SCANS_BEFORE_INDEX = 20


class ArrayCalls:
    """Three numpy columns sorted by site: site (int64), node (int64: a function start, or ~i for
    names[i]) and tail (bool)."""

    def __init__(self, np, site, node, tail, names: list):
        self.np, self.site, self.node, self.tail, self.names = np, site, node, tail, names
        self._codes = {name: ~i for i, name in enumerate(names)}
        self._order = self._keys = None  # row numbers by node (by site within a node); their nodes
        self._asked = 0  # questions answered by a scan, before the index

    def __len__(self) -> int:
        return len(self.site)

    def _decode(self, rows) -> list:
        names = self.names
        nodes = [n if n >= 0 else names[~n] for n in self.node[rows].tolist()]
        return list(zip(self.site[rows].tolist(), nodes, self.tail[rows].tolist()))

    def rows(self) -> list:
        return self._decode(slice(None))

    def between(self, lo: int, hi: int) -> list:
        i, j = self._find(self.site, lo), self._find(self.site, hi)
        return self._decode(slice(i, j)) if i < j else []

    def _find(self, column, value: int, side: str = "left") -> int:
        """searchsorted for any Python int (beyond int64, it sorts past every row)."""
        if value >= 1 << 63:
            return len(column)
        if value < -(1 << 63):
            return 0
        return int(column.searchsorted(value, side))

    def to(self, node) -> list:
        if isinstance(node, int):
            if not 0 <= node < 1 << 63:  # no function starts there (negative codes are names)
                return []
            code = node
        else:
            code = self._codes.get(node)
            if code is None:
                return []
        if self._order is None:
            self._asked += 1
            if self._asked <= SCANS_BEFORE_INDEX:  # a few questions: a pass over the column each
                return self._decode(self.np.flatnonzero(self.node == code))
            self._order = self.np.argsort(self.node, kind="stable")  # by site within a node
            self._keys = self.node[self._order]
        i, j = self._find(self._keys, code), self._find(self._keys, code, "right")
        return self._decode(self._order[i:j]) if i < j else []

    def called_names(self) -> list:
        np = self.np
        named = np.flatnonzero(self.node < 0)
        codes, first = np.unique(self.node[named], return_index=True)
        return [self.names[~int(c)] for c in codes[np.argsort(first, kind="stable")].tolist()]
