"""Developer aid, not used by any backend: says where CPython's next full
collection will put each object, and why.

The model replays `move_unreachable` (Modules/gcmodule.c) over the objects
it knows (src/model/gcorder.rs). When a finalization order disagrees, this
simulates the same scan over every real object, so the two can be compared
object by object: it reads the collector's list (`gc.get_objects`, oldest
generation first, as a full collection merges them), the references each
object's `tp_traverse` visits (`gc.get_referents`, in traversal order) and
refcounts, then scans as the collector does and prints, for each object it
is asked about, its new position and the chain of objects that reached it
(`moved by`: that traversal moved it to the end of the list; `reached
by`: it was reached before the scan got to it and stayed in place).

Use: `canceltree export case.ct > k.py`, set `EAGER = True` there for the
eager profiles, define `simulate` before `async def main()` (paste this
file's code or import it), and call `simulate()` on the line before the
`gc.collect()` you study: a `(gc)` statement's `with N(k): gc.collect()`,
or the runtime's final collection in `run()`. Run it with the interpreter
of the profile; output goes to stderr. The exported script may hang at
interpreter exit afterwards (the simulation's lists keep every object);
run it under `timeout`.

Checked against `gc.get_objects()` after the real collection on 3.12.1:
the simulated order of the program's tasks, coroutines, futures, frames,
exceptions and tracebacks matched on the cases whose README in
tests/model_findings cites this file.
"""

import asyncio
import gc
import sys
import types


def label(o):
    """A short name for an object of the kinds the model tracks."""
    try:
        if isinstance(o, types.FrameType):
            return 'Frame ' + o.f_code.co_name
        if isinstance(o, types.CoroutineType):
            return 'Coro ' + o.cr_code.co_name
        if isinstance(o, asyncio.Task):
            return 'Task ' + o.get_name()
        if isinstance(o, asyncio.Future):
            return type(o).__name__ + ' ' + hex(id(o))[-5:]
        if isinstance(o, BaseException):
            return 'Exc ' + type(o).__name__
        if isinstance(o, types.TracebackType):
            return 'Tb ' + o.tb_frame.f_code.co_name
        if isinstance(o, types.FunctionType):
            return 'Fn ' + o.__qualname__
        if isinstance(o, types.CellType):
            try:
                return 'Cell(' + label(o.cell_contents) + ')'
            except ValueError:
                return 'Cell(empty)'
        return type(o).__name__
    except Exception:
        return type(o).__name__


def _interesting(lab):
    head = lab.split()[0]
    if head in ('Task', 'Coro', '_GatheringFuture', 'Future', 'Exc', 'Tb'):
        return True
    # The runtime's and this module's own frames are noise.
    noise = ('Frame _run', 'run_', '_drive', 'Frame N', 'Frame enc', 'Frame simulate')
    return head == 'Frame' and not any(x in lab for x in noise)


def simulate(interesting=_interesting, out=sys.stderr):
    """Prints the simulated scan of a full collection run now."""
    # A full collection appends the younger generations to the oldest.
    objs = gc.get_objects(2) + gc.get_objects(0) + gc.get_objects(1)
    pos = {id(o): i for i, o in enumerate(objs)}
    # Minus the references of `objs`, of the comprehension's variable and
    # of getrefcount's argument.
    refs = [sys.getrefcount(x) - 3 for x in objs]
    trav = []
    for o in objs:
        # The frame calling gc.collect() runs it through a C call, and the
        # collector does not traverse that executing frame's locals: what
        # they hold counts as referred to from outside.
        running = (isinstance(o, types.CoroutineType) and o.cr_running) or (
            isinstance(o, types.GeneratorType) and o.gi_running)
        r = [] if running else [pos[id(y)] for y in gc.get_referents(o) if id(y) in pos]
        trav.append(r)
        for j in r:
            refs[j] -= 1
    young = list(range(len(objs)))
    # U not reached yet, R reached, A set aside, D traversed.
    state = ['R' if refs[i] > 0 else 'U' for i in range(len(objs))]
    why = {}
    done = []
    k = 0
    while k < len(young):
        i = young[k]
        k += 1
        if state[i] == 'R':
            state[i] = 'D'
            done.append(i)
            for j in trav[i]:
                if state[j] == 'U':
                    state[j] = 'R'
                    why[j] = (i, False)
                elif state[j] == 'A':
                    state[j] = 'R'
                    young.append(j)
                    why[j] = (i, True)
        elif state[i] == 'U':
            state[i] = 'A'
    for p, i in enumerate(done):
        lab = label(objs[i])
        if not interesting(lab):
            continue
        chain = []
        j = i
        while j in why and len(chain) < 12:
            par, moved = why[j]
            chain.append('%s %s@%d' % ('moved by' if moved else 'reached by', label(objs[par]), par))
            j = par
        ext = ' (referred to from outside)' if refs[i] > 0 else ''
        print('survives', p, 'was', i, lab + ext, ', '.join(chain), file=out)
    for i, s in enumerate(state):
        if s == 'A' and interesting(label(objs[i])):
            print('garbage', i, label(objs[i]), file=out)
