"""Evidence from the call graph: does one scope of code (a loop, or a function) reach two groups of
calls in order, and not a third?

A scope reaches a name within N calls when one of its call sites calls the name (1), or calls a
function that reaches it within N-1. "Ordered" means a call site reaching the first group lies at or
before one reaching the second: the accept comes before the fork in the loop body, the write before
the rename. It is how a pre-forked pool (fork, then accept in the child) differs from a fork per
accepted connection.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from syscall_lint.elf import outcome
from syscall_lint.elf.callgraph import MAX_LOOP, CallGraph, Function, descend, flow
from syscall_lint.elf.callsites import _capstone


# calls a loop may make and still only retry the call it wraps
RETRY_CALLS = frozenset({"errno_location", "select", "poll", "ppoll", "pselect", "usleep", "nanosleep", "sleep"})


# the spawn must sit in one of this many innermost loops around the accept (a compiler may lay the
# code after an accept outside the loop over listeners, back in the loop around it)
PASS_LEVELS = 3


@dataclass(frozen=True)
class PathSpec:
    first: frozenset  # e.g. accept, accept4
    second: frozenset  # e.g. fork, vfork
    scope: str  # "loop": one loop's body; "function": one function's body
    depth: int  # calls from the scope's own code
    ordered: bool = True
    without: frozenset = frozenset()  # none of these may be reachable from the scope …
    without_depth: int = 0  # … within this many calls
    not_in_loop: frozenset = frozenset()  # a loop that calls one of these itself is not the shape
    # a callee with a loop of its own that reaches `first` and one of these serves on its own: one
    # call to it is not one `first` per iteration of the caller's loop
    serving: frozenset = frozenset()
    # a function on the way called from more places than this is a utility (a logger, an error
    # reporter that forks a core dump) that every part of the program uses, not this scope's work
    max_callers: int = 0
    second_depth: int = 0  # calls to the second group, when fewer than `depth` (0: the same)
    # in a binary that links an event library, a function reaching both in order counts as a loop's
    # body: the library's dispatch loop calls it once per event (libevent's inetd calls gettcp)
    library_loop: bool = False
    # calls through a structure slot (indirect.py) count, within this many calls in all (0: not)
    indirect_depth: int = 0


@dataclass(frozen=True)
class Reach:
    site: int  # the call site in the scope
    chain: tuple  # names from the first callee down to the reached name


@dataclass(frozen=True)
class Match:
    function: Function
    start: int
    end: int
    first: Reach
    second: Reach
    callback: bool = False  # a function the event library's loop calls, not a loop in this binary
    pointer: str = ""  # the second group is reached through a function pointer: what was seen

    def via(self, reach: Reach) -> str:
        """`accept4` or `accept4 through accept_connection → s_accept`."""
        *hops, name = reach.chain
        return name if not hops else f"{name} through {' → '.join(hops)}"


class Evaluator:
    """Evaluates PathSpecs over one binary's call graph; distance tables are shared between specs."""

    def __init__(self, info, sections, graph: CallGraph):
        self.info, self.sections, self.graph = info, sections, graph
        self._dist = {}
        self.max_fan_in = 0  # the current spec's max_callers (distance tables are keyed by it)
        self._loop_cache = {}
        self._md = None
        self._pointer = None  # indirect.PointerIndex, made on first need
        self._via_pointer = {}  # call site → (chain, description) through a structure slot
        self._pointer_sites = set()  # their addresses

    def distances(self, names: frozenset, depth: int) -> dict:
        key = (names, depth, self.max_fan_in)
        if key not in self._dist:
            self._dist[key] = self.graph.distances(set(names), depth, self.max_fan_in)
        return self._dist[key]

    def _reaching(self, sites, names, depth) -> list:
        """The call sites (among `sites`) that reach `names` within `depth` calls."""
        dist = self.distances(names, depth - 1)
        out = []
        for s in sites:
            if s.target in dist:
                if self.max_fan_in and isinstance(s.target, int) and dist[s.target] > 0 \
                        and self.graph.fan_in(s.target) > self.max_fan_in:
                    continue
                out.append(s)
        return out

    def chain(self, site, names, depth) -> tuple:
        if site in self._via_pointer and names == self._pointer_names:
            return self._via_pointer[site][0]
        return descend(self.graph.sites, site.target, self.distances(names, depth - 1), self.graph.label)

    def flow_of(self, func: Function):
        if func.start not in self._loop_cache:
            if self._md is None:
                self._md = _capstone(self.info.machine)
                self._md.skipdata = True
            self._loop_cache[func.start] = flow(self.info, self.sections, func, self._md, self.graph)
        return self._loop_cache[func.start]

    def loops_of(self, func: Function) -> list:
        return self.flow_of(func)[1]

    def _same_pass(self, func: Function, x, y, spec) -> bool:
        """Is `y` inside one of the PASS_LEVELS innermost loops around `x` that do more than retry
        `x`? (stunnel's loop over listeners holds its accept and create_client; a fork reached only
        from the outermost loop, on the pass that handles signals, is not per connection.)"""
        sites = self.graph.sites.get(func.start, ())
        firsts = set(self._reaching(sites, spec.first, spec.depth))
        levels = 0
        for loop in self.loops_of(func):  # innermost first
            if not loop.contains(x.address):
                continue
            inside = [s for s in sites if loop.contains(s.address)]
            if all(s in firsts or (isinstance(s.target, str) and _plain(s.target) in RETRY_CALLS) for s in inside):
                continue  # a retry loop around the accept (EINTR, EAGAIN)
            if loop.contains(y.address):
                return True
            levels += 1
            if levels >= PASS_LEVELS:
                return False
        return True

    def _follows(self, func: Function, a: int, b: int) -> bool:
        """Can control go from the call at `a` to the call at `b` within one pass of every loop around
        both? (The fork runs for this accept, not on a later pass of the serving loop.) The path may
        go round a loop that holds only `a` — the loop over listening sockets that accepts, left by a
        test at its top — but never back to the header of a loop that holds both."""
        graph, loops = self.flow_of(func)
        around_both = {lp.header for lp in loops if lp.contains(a) and lp.contains(b)}
        block_of = {}
        for start, blk in graph.items():
            if blk.start <= a < blk.end:
                block_of["a"] = start
            if blk.start <= b < blk.end:
                block_of["b"] = start
        if "a" not in block_of or "b" not in block_of:
            return a < b
        if block_of["a"] == block_of["b"] and a < b:
            return True
        # back to the head of a loop around both starts its next pass, where the order is lost. A
        # jump back stays in this pass only inside a loop that is not around both (going round the
        # listener loop); one outside every such loop may be a loop the analysis did not see.
        inner = [lp for lp in loops if lp.header not in around_both]
        headers = {lp.header for lp in loops}
        # only for a call reached through a function pointer: as a general rule it costs SCL302
        # three false positives (squid, stunnel4 arm64), measured
        relaxed = b in self._pointer_sites

        def allowed(frm, to):
            if to in around_both:
                return False
            if to > frm or any(lp.contains(frm) and lp.contains(to) for lp in inner):
                return True
            # a jump back to code laid out above, inside the loops around both and heading none
            # (mariadb's accept retry loop goes back up to the call that hands the socket over)
            return relaxed and to not in headers and all(lp.contains(to) for lp in loops if lp.header in around_both)

        # the side of the branch on the call's result taken when it fails is not this call's path
        ok = outcome.success_target(self.info.machine, graph, block_of["a"], a)
        if ok is not None and block_of["a"] != block_of["b"]:
            branch, success = ok  # the branch may end a later block of a fall-through chain
            seen, stack = set(), [success] if allowed(branch, success) else []
        else:
            seen, stack = set(), [n for n in graph[block_of["a"]].succs if allowed(block_of["a"], n)]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            if n == block_of["b"]:
                return True
            seen.add(n)
            stack.extend(m for m in graph[n].succs if allowed(n, m))
        return False

    def matches(self, spec: PathSpec, limit: int = 1, library_loop: bool = False) -> list:
        """Up to `limit` scopes where the spec holds, one per function, the most direct first (the
        fewest calls between the scope and the two groups)."""
        self.max_fan_in = spec.max_callers
        out = []
        # only the callers of what reaches the first group can hold a match: a walk over the
        # reversed edges, not over every function of the binary
        candidates = set()
        for node in self.distances(spec.first, spec.depth - 1):
            candidates.update(self.graph.callers(node))
        if not (spec.indirect_depth and spec.scope == "loop"):
            # a scope needs a call site reaching the second group too (below, by direct calls only
            # when no function pointer may stand in): only the callers of what reaches it qualify
            # (SCL101's renames are called from a few functions, its writes from hundreds)
            second = set()
            for node in self.distances(spec.second, (spec.second_depth or spec.depth) - 1):
                second.update(self.graph.callers(node))
            candidates &= second
        for start in sorted(candidates):
            func = self.graph.function(start)
            sites = self.graph.sites.get(start)
            if func is None or not sites:
                continue
            firsts = self._reaching(sites, spec.first, spec.depth)
            if not firsts:
                continue
            seconds = self._reaching(sites, spec.second, spec.second_depth or spec.depth)
            pointer = ""
            if not seconds and spec.indirect_depth and spec.scope == "loop":
                seconds = self._reaching_through_pointer(func, sites, firsts, spec)
                pointer = "; ".join(dict.fromkeys(self._via_pointer[s][1] for s in seconds))
            if not seconds:
                continue
            hit = self._in_function(func, sites, firsts, seconds, spec)
            if hit is None and library_loop and spec.library_loop and spec.scope == "loop" and not pointer:
                hit = self._callback(func, sites, firsts, seconds, spec)
            if hit is not None and pointer:
                hit = replace(hit, pointer=pointer)
            if hit is not None:
                out.append(hit)
        out.sort(key=lambda m: (len(m.first.chain) + len(m.second.chain), m.start))
        return out[:limit]

    _pointer_names = None

    def _reaching_through_pointer(self, func, sites, firsts, spec) -> list:
        """The call sites of a loop around a first-group call that reach the second group through
        one call via a structure slot whose few candidates include a function reaching it."""
        from syscall_lint.elf.indirect import PointerIndex

        if self._pointer is None:
            self._pointer = PointerIndex(self.info, self.sections, self.graph)
        self._pointer_names = spec.second
        # below a candidate the spawn may sit behind a wrapper every part of the program calls
        # (mariadb's thread-creation wrapper has 17 callers): the slot is the narrowing evidence here
        fan_in, self.max_fan_in = self.max_fan_in, 0
        dist = self.distances(spec.second, spec.indirect_depth - 1)
        self.max_fan_in = fan_in
        out = []
        if not self._pointer.may_hold(dist):
            return out
        for loop in self.loops_of(func):
            if loop.size > MAX_LOOP or not any(loop.contains(s.address) for s in firsts):
                continue
            for s in sites:
                if s in self._via_pointer or not loop.contains(s.address) or not isinstance(s.target, int):
                    if s in self._via_pointer and s not in out:
                        out.append(s)
                    continue
                found = self._pointer.reach(s.target, dist, spec.indirect_depth - 1, self.graph.label)
                if found is not None:
                    self._via_pointer[s] = found
                    self._pointer_sites.add(s.address)
                    out.append(s)
        return out

    def _in_function(self, func, sites, firsts, seconds, spec):
        if spec.scope == "function":
            scopes = [None]
        else:
            scopes = [lp for lp in self.loops_of(func) if lp.size <= MAX_LOOP]
        for loop in scopes:
            inside = sites if loop is None else [s for s in sites if loop.contains(s.address)]
            a = [s for s in firsts if s in inside]
            b = [s for s in seconds if s in inside]
            if spec.scope == "loop":
                a = [s for s in a if not self._serves_in_a_loop(s, spec) and not self._launches(s, spec)]
            if not a or not b:
                continue
            pair = self._ordered_pair(a, b, spec, func=func) if spec.ordered else (a[0], b[0])
            if pair is None:
                continue
            if spec.not_in_loop and any(isinstance(s.target, str) and _plain(s.target) in spec.not_in_loop
                                        for s in inside):
                continue
            if spec.without and self._reaching(inside, spec.without, spec.without_depth):
                continue
            first, second = pair
            start, end = (func.start, func.end) if loop is None else (loop.spans[0][0], loop.spans[-1][1])
            return Match(func, start, end, Reach(first.address, self.chain(first, spec.first, spec.depth)),
                         Reach(second.address, self.chain(second, spec.second, spec.second_depth or spec.depth)))
        return None

    def _callback(self, func, sites, firsts, seconds, spec):
        """An event callback: the function itself accepts and then spawns, outside any loop of its own."""
        loops = self.loops_of(func)
        a = [s for s in firsts if not any(lp.contains(s.address) for lp in loops)
             and not self._serves_in_a_loop(s, spec) and not self._launches(s, spec)]
        b = [s for s in seconds if not any(lp.contains(s.address) for lp in loops)]
        pair = self._ordered_pair(a, b, spec, func=func) if a and b else None
        if pair is None:
            return None
        first, second = pair
        return Match(func, func.start, func.end, Reach(first.address, self.chain(first, spec.first, spec.depth)),
                     Reach(second.address, self.chain(second, spec.second, spec.depth)), callback=True)

    def _ordered_pair(self, a, b, spec, depth=None, seen=None, func=None):
        """A site reaching the first group followed by one reaching the second (in a loop: on a path
        that does not go back to a loop head); when one call reaches both, the callee must itself
        reach them in that order."""
        depth = spec.depth if depth is None else depth
        for x in a:
            for y in b:
                if x is not y and (self._follows(func, x.address, y.address) and self._same_pass(func, x, y, spec)
                                   if func is not None else x.address < y.address):
                    return x, y
                if x is y and isinstance(x.target, int) and depth > 1 and self._orders(x.target, spec, depth - 1, seen):
                    return x, y
        return None

    def _orders(self, start, spec, depth, seen) -> bool:
        seen = set() if seen is None else seen
        if start in seen:
            return False
        seen.add(start)
        sites = self.graph.sites.get(start, ())
        a = self._reaching(sites, spec.first, depth)
        b = self._reaching(sites, spec.second, depth)
        return bool(a and b and self._ordered_pair(a, b, spec, depth, seen, func=self.graph.function(start)))

    def _launches(self, site, spec) -> bool:
        """Is the first group reached through a function that reaches the second group first (forks,
        then accepts the child's connection: squid's ipcCreate, a pre-forked pool)? That accept is
        not a client's."""
        dist = self.distances(spec.first, spec.depth - 1)
        node, seen = site.target, set()
        while isinstance(node, int) and node not in seen and dist.get(node, 0) > 0:
            seen.add(node)
            sites = self.graph.sites.get(node, ())
            a = self._reaching(sites, spec.first, dist[node])
            b = self._reaching(sites, spec.second, spec.depth)
            func = self.graph.function(node)
            if a and b and func is not None and not self._ordered_pair(a, b, spec, dist[node], func=func):
                return True
            below = [s.target for s in sites if dist.get(s.target, 99) == dist[node] - 1]
            if not below:
                return False
            node = below[0]
        return False

    def _serves_in_a_loop(self, site, spec) -> bool:
        """Does the callee reach the first group and a `serving` call from one loop of its own (a
        serving loop: tinyproxy's child_main_loop)? Then one call to it is many accepts, not one
        per iteration of the caller's loop."""
        if not spec.serving or not isinstance(site.target, int) or spec.depth < 2:
            return False
        func = self.graph.function(site.target)
        if func is None:
            return False
        sites = self.graph.sites.get(func.start, ())
        firsts = self._reaching(sites, spec.first, spec.depth - 1)
        serving = self._reaching(sites, spec.serving, spec.depth - 1)
        if not firsts or not serving:
            return False
        for loop in self.loops_of(func):
            if any(loop.contains(s.address) for s in firsts) and any(loop.contains(s.address) for s in serving):
                return True
        return False


def _plain(name: str) -> str:
    from syscall_lint.elf.callsites import _base

    return _base(name)
