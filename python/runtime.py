# canceltree runtime: runs one program on asyncio's own loop with a virtual
# clock and records its trace. Shared verbatim by the worker and by every
# exported script, so both print the same trace.
#
# Discipline (docs/TRACE.md): time is virtual; gc only at (gc) and at the end;
# nothing here adds a task, a future, an await or a loop iteration; states are
# read without calling result()/exception(), which would mark them retrieved.
import asyncio, gc, selectors, sys, time, weakref

EAGER = '--eager' in sys.argv  # the +eager variant: eager_task_factory's tasks


class E1(Exception): pass
class E2(Exception): pass
class E3(Exception): pass
class E4(Exception): pass
class E5(Exception): pass
class E6(Exception): pass
class E7(Exception): pass
class E8(Exception): pass
class E9(Exception): pass


class Deadlock(Exception):
    """Nothing ready, no timer: select() would block forever."""


class _VirtualSelector(selectors._BaseSelectorImpl):
    # Waiting for `timeout` advances the virtual clock by exactly that much.
    def __init__(self, loop):
        super().__init__()
        self.loop = loop

    def select(self, timeout=None):
        if timeout is None:
            raise Deadlock()
        self.loop.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop, unchanged but for the clock and the handler."""

    def __init__(self, trace):
        self.now = 0.0
        self.iteration = 0  # _run_once calls so far; events record it
        self.trace = trace
        super().__init__(_VirtualSelector(self))
        self._clock_resolution = 1e-09  # fixed: the real one is machine-dependent

    def time(self):
        return self.now

    # The self-pipe only wakes a blocked select() from another thread or a
    # signal handler. The virtual selector never blocks and never reports a
    # ready fd, so its reader could never run; without it (_write_to_self
    # returns at once when _csock is None) a run makes no socketpair.
    def _make_self_pipe(self):
        self._ssock = self._csock = None

    def _close_self_pipe(self):
        pass

    # BaseEventLoop.create_future, in one frame as there. Labels go by
    # address: a future made where a labelled one was freed (a Queue getter
    # where a dead shield's future was) must not take its label.
    def create_future(self):
        fut = asyncio.futures.Future(loop=self)
        self.trace.labels.pop(id(fut), None)
        return fut

    def _run_once(self):
        # Counting adds no iteration. Exploration's injected cancels happen
        # here, between two iterations, outside any task or handle.
        self.iteration += 1
        for name, msg in self.trace.inject.get(self.iteration, ()):
            self.trace.injected(name, msg)
        super()._run_once()

    def call_exception_handler(self, context):
        self.trace.handler(context)

    def call_soon(self, callback, *args, context=None):
        # A finishing future schedules its done callbacks here, C Task or not.
        # Our own one is traced at once instead of queued, so tracing adds no
        # handle and keeps no task alive longer.
        if callback is _traced_done:
            return self.trace.done(*args)
        return super().call_soon(callback, *args, context=context)


def _block(seconds):
    # (block T) is time.sleep(T): the clock jumps, nothing else runs. Code
    # running with no loop running (a coroutine closed after the loop
    # stopped) sleeps too: the run's clock jumps as the real one would.
    if seconds < 0:
        raise ValueError('sleep length must be non-negative')
    loop = asyncio._get_running_loop()
    if loop is None and TRACE is not None:
        loop = TRACE.loop
    if loop is not None:
        loop.now += seconds


time.sleep = _block


class TaskGroup(asyncio.TaskGroup):
    # Pinned order: _abort() cancels children in creation order, not in the
    # memory-address order of the set CPython uses (docs/TRACE.md).
    def __init__(self):
        super().__init__()
        self._tasks = _OrderedSet()


class _OrderedSet(dict):
    def add(self, item):
        self[item] = None

    def discard(self, item):
        self.pop(item, None)


# The background-set idiom of (spawn NAME :keep ...), insertion-ordered:
# the set the idiom uses lets go of its tasks in memory-address order when
# the run's globals die (BG.clear() below), so a case's trace would depend
# on what the worker ran before it (docs/TRACE.md, pinned orders).
BG = _OrderedSet()


def keep(task):
    BG.add(task)
    task.add_done_callback(BG.discard)


def future(label):
    fut = asyncio.get_running_loop().create_future()
    TRACE.labels[id(fut)] = label
    return fut


def _fresh(fut):
    # gather()'s future, the one future not made by loop.create_future():
    # see VirtualLoop.create_future.
    TRACE.labels.pop(id(fut), None)
    return fut


def named(label, fut):
    TRACE.labels[id(fut)] = label
    return fut


def N(node):
    return _Node(TRACE, node)


class _Node:
    # `with N(k):` records node k starting and ending; `_n(v)` records its value.
    __slots__ = ('trace', 'node', 'val')

    def __init__(self, trace, node):
        self.trace, self.node, self.val = trace, node, _NOVAL

    def __enter__(self):
        self.trace.event({'start': self.node})
        return self

    def __call__(self, value):
        self.val = enc(value)
        return value

    def __exit__(self, typ, exc, tb):
        if exc is not None:
            res = {'raise': enc_exc(exc)}
        elif self.val is _NOVAL:
            res = 'ok'
        else:
            res = {'val': self.val}
        self.trace.event({'end': {'node': self.node, 'res': res}})
        return False


_NOVAL = object()


def enc(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    return {'obj': type(v).__name__}


def _strip_reprs(s):
    # Reprs differ between the C and Python tasks: keep only "<Type>".
    out, i = [], 0
    while i < len(s):
        if s[i] == '<' and i + 1 < len(s) and (s[i + 1].isalpha() or s[i + 1] == '_'):
            depth, j = 0, i
            while j < len(s):
                depth += {'<': 1, '>': -1}.get(s[j], 0)
                if depth == 0:
                    break
                j += 1
            word = s[i + 1:j].split(' ', 1)[0].split('.')[-1]
            out.append('<' + word + '>')
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return ''.join(out)


def enc_exc(e, depth=0):
    d = {'cls': type(e).__name__}
    args = [_strip_reprs(a) if isinstance(a, str) else enc(a) for a in e.args]
    if isinstance(e, RecursionError):
        args = ['maximum recursion depth exceeded']  # the suffix names the C call that hit it
        if TRACE is not None:
            TRACE.recursed = True
    if isinstance(e, BaseExceptionGroup):
        args = [_strip_reprs(e.message)]
        d['group'] = [enc_exc(x, depth + 1) for x in e.exceptions] if depth < 32 else []
    if args:
        d['args'] = args
    chain, cur, seen = [], e, {id(e)}
    while len(chain) < 8:
        if cur.__cause__ is not None:
            link, cur = 'cause', cur.__cause__
        elif cur.__context__ is not None and not cur.__suppress_context__:
            link, cur = 'context', cur.__context__
        else:
            break
        if id(cur) in seen:
            break
        seen.add(id(cur))
        chain.append([link, type(cur).__name__])
    if chain:
        d['chain'] = chain
    return d


def _cancel_message(fut):
    # The CancelledError an awaiter will get is held in _cancelled_exc, which
    # the C Task does not expose; gc.get_referents reads it without taking it.
    exc = getattr(fut, '_cancelled_exc', None)
    if exc is None:
        for r in gc.get_referents(fut):
            if isinstance(r, asyncio.CancelledError):
                exc = r
    if exc is not None:
        return _strip_reprs(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else None
    return fut._cancel_message


def fin(fut):
    if fut.cancelled():
        return {'cancelled': _cancel_message(fut)}
    if fut._exception is not None:
        return {'exception': enc_exc(fut._exception)}
    return {'result': enc(fut._result)}


class Trace:
    def __init__(self, coro_names, inject=()):
        self.coro_names = coro_names  # coroutine function name -> (task name, node)
        self.inject = {}  # iteration -> [(task name, message)], cancels to inject
        for it, name, msg in inject:
            self.inject.setdefault(it, []).append((name, msg))
        self.events, self.tasks, self.ids, self.labels = [], [], {}, {}
        self.pending = []  # tasks under construction (eager first steps)
        self.run = next(_RUNS)
        # How deep Task.cancel recursed before a RecursionError depends on the
        # interpreter's warm-up, so cancelling() counts are unknown after one.
        self.recursed = False
        self.loop = None

    def current(self):
        t = asyncio.current_task(self.loop)
        if t is None:
            return None
        if self.pending:
            # An eager first step: the task is not registered yet, and ids
            # may still map its address to an earlier, freed task.
            return self.pending[-1]
        return self.ids.get(id(t))

    def event(self, what):
        self.events.append({'t': self.loop.now, 'it': self.loop.iteration, 'task': self.current(), 'what': what})

    def injected(self, name, msg):
        for idx, r in enumerate(self.tasks):
            t = r['ref']()
            if r['name'] == name and t is not None and not t.done():
                try:
                    ret = t.cancel(msg)
                except RecursionError:  # Task.cancel recurses down await cycles
                    self.recursed = True
                    self.event({'phase': 'inject cancel of %s raised RecursionError' % name})
                else:
                    self.event({'inject': {'task': idx, 'ret': ret}})

    def factory(self, loop, coro, **kw):
        name, node = self.coro_names.get(coro.cr_code.co_name, (coro.cr_code.co_name, 0))
        idx = len(self.tasks)
        self.event({'create': {'task': idx, 'name': name, 'node': node}})
        # Until the constructor returns the record has no task: with eager
        # tasks a KeyboardInterrupt from the first step leaves Task()
        # without one, and the task is gone (freed with the failed call).
        self.tasks.append({'name': name, 'ref': _no_task, 'fin': None, 'cancelling': None})
        self.pending.append(idx)
        # The task's asyncio name is its index here (names are only for
        # reprs, which traces strip), so a dying task can be named.
        try:
            if EAGER:
                task = asyncio.Task(coro, loop=loop, name=self.task_name(idx), eager_start=True, **kw)
            else:
                task = asyncio.Task(coro, loop=loop, name=self.task_name(idx), **kw)
        finally:
            self.pending.pop()
        self.ids[id(task)] = idx
        self.tasks[idx]['ref'] = _weak(task)
        task.add_done_callback(_traced_done)
        return task

    def done(self, task):
        idx = self.ids[id(task)]
        rec = self.tasks[idx]
        rec['fin'], rec['cancelling'] = fin(task), task.cancelling()
        self.event({'done': {'task': idx, 'fin': rec['fin']}})

    def task_name(self, idx):
        return 'canceltree-%d-%d' % (self.run, idx)

    def task_index(self, task):
        # By the factory's name while it is still the task's name. A task
        # left over from an earlier run in the same worker has another run
        # number and belongs to no task of this one.
        parts = task.get_name().split('-')
        if len(parts) == 3 and parts[0] == 'canceltree' and parts[1] == str(self.run):
            return int(parts[2])
        return None

    def label(self, obj):
        if isinstance(obj, asyncio.Task):
            # A task freed inside its own constructor (an eager first step
            # re-raising a KeyboardInterrupt) is in no table and may sit
            # where an earlier task was; it still has the name the factory
            # gave it. Others are found by address (create_task(name=...)
            # renames spawned tasks after the factory returns).
            idx = self.task_index(obj)
            if idx is None:
                idx = self.ids.get(id(obj))
            return None if idx is None else self.tasks[idx]['name']
        return self.labels.get(id(obj))

    def handler(self, context):
        msg = context.get('message', '')
        if msg.startswith('Exception in callback'):
            msg = 'Exception in callback'
        h = {'msg': msg}
        obj = context.get('task', context.get('future'))
        if obj is not None and self.label(obj) is not None:
            h['obj'] = self.label(obj)
        if context.get('exception') is not None:
            h['exc'] = enc_exc(context['exception'])
        self.event({'handler': h})

    def waiting(self, idx):
        waiter = self.tasks[idx]['ref']()._fut_waiter
        if waiter is None:
            return 'nothing'
        label = self.label(waiter)
        if isinstance(waiter, asyncio.Task):
            return 'task ' + label
        kind = 'gather' if type(waiter).__name__ == '_GatheringFuture' else 'future'
        return kind + (' ' + label if label else '')

    def pending_tasks(self):
        return [i for i, r in enumerate(self.tasks) if r['ref']() is not None and not r['ref']().done()]

    def finals(self):
        out = []
        for r in self.tasks:
            t = r['ref']()
            if t is None:
                state = {'done': r['fin']} if r['fin'] is not None else 'destroyed'
                out.append({'name': r['name'], 'state': state, 'cancelling': r['cancelling']})
            else:
                # A done task's state as recorded at completion, since an
                # awaiter may have taken its CancelledError (and message).
                state = {'done': r['fin']} if t.done() else 'pending'
                out.append({'name': r['name'], 'state': state, 'cancelling': t.cancelling()})
        if self.recursed:
            for t in out:
                t['cancelling'] = None
        return out


def _weak(obj):
    return weakref.ref(obj)


def _no_task():
    return None


_RUNS = iter(range(1, 1 << 62))



def _traced_done(task):
    TRACE.done(task)


TRACE = None


def run(main, coro_names, inject=()):
    """Runs `main` and returns its trace as a JSON-ready dict. `inject` lists
    (iteration, task name, message) cancels to make before that iteration."""
    global TRACE
    trace = TRACE = Trace(coro_names, inject)
    # The program's N records into this run's trace even if its code runs
    # after the run (a coroutine closed by a later collection in the worker).
    main.__globals__['N'] = lambda node: _Node(trace, node)
    loop = trace.loop = VirtualLoop(trace)
    loop.set_task_factory(trace.factory)
    gc_was = gc.isenabled()
    gc.disable()
    full_before = gc.get_stats()[2]['collections']
    try:
        outcome = _drive(trace, loop, main)
        tasks = trace.finals()
    finally:
        loop.close()
        trace.event({'phase': 'collect'})
        # The program's module globals die with it: a task still in the
        # background set (its discard callback never ran) is collected now,
        # not in some later program's run.
        BG.clear()
        main = loop = None
        # Everything this run allocated is in generation 0 unless a (gc)
        # promoted it; collecting only that generation is much cheaper.
        gc.collect(0 if gc.get_stats()[2]['collections'] == full_before else 2)
        if gc_was:
            gc.enable()
        TRACE = None
    return {'events': trace.events, 'outcome': outcome, 'tasks': tasks}


def _drive(trace, loop, main):
    main_task = loop.create_task(main())
    outcome = None
    try:
        loop.run_until_complete(main_task)
    except Deadlock:
        outcome = {'deadlock': [{'task': i, 'on': trace.waiting(i)} for i in trace.pending_tasks()]}
    except BaseException as e:
        if not main_task.done():  # KeyboardInterrupt or SystemExit left the loop
            outcome = {'escaped': enc_exc(e)}
    if outcome is None:
        # As recorded at completion: run_until_complete's result() has since
        # taken the CancelledError that held main's cancel message.
        outcome = {'main': trace.tasks[0]['fin']}
    main_task = None
    leftover = trace.pending_tasks()
    if leftover:
        # asyncio.run's shutdown, but in creation order instead of WeakSet order.
        trace.event({'phase': 'shutdown'})
        tasks = [trace.tasks[i]['ref']() for i in leftover]
        for i, t in zip(leftover, tasks):
            try:
                t.cancel()
            except RecursionError:  # Task.cancel recurses down await cycles
                trace.recursed = True
                trace.event({'phase': 'cancel of %s raised RecursionError' % trace.tasks[i]['name']})
        try:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        except Deadlock:
            trace.event({'phase': 'stuck'})
        except BaseException:
            trace.event({'phase': 'escaped'})
        tasks = None
    return outcome


# --- text rendering, identical to canceltree's own (docs/TRACE.md) ---

def _time(t):
    if t == int(t):
        return str(int(t))
    import decimal
    return format(decimal.Decimal(repr(t)), 'f')


def _val(v):
    if isinstance(v, list):
        return '[' + ', '.join(_val(x) for x in v) + ']'
    if isinstance(v, dict):
        return '<' + v['obj'] + '>'
    return repr(v)


def _exc(e):
    if 'group' in e:
        inner = [_val(a) for a in e.get('args', [])] + ['[' + ', '.join(_exc(x) for x in e['group']) + ']']
    else:
        inner = [_val(a) for a in e.get('args', [])]
    s = e['cls'] + '(' + ', '.join(inner) + ')'
    for link, cls in e.get('chain', []):
        s += (' from ' if link == 'cause' else ' during ') + cls
    return s


def _fin(f):
    if 'result' in f:
        return 'result ' + _val(f['result'])
    if 'exception' in f:
        return 'exception ' + _exc(f['exception'])
    return 'cancelled' + ('' if f['cancelled'] is None else ' ' + repr(f['cancelled']))


def render(trace, labels):
    names = [t['name'] for t in trace['tasks']]
    rows = []
    for ev in trace['events']:
        (kind, x), = ev['what'].items()
        if kind == 'start':
            text = 'start #%d %s' % (x, labels[x])
        elif kind == 'end':
            text = 'end #%d %s' % (x['node'], labels[x['node']])
            if x['res'] != 'ok':
                (rk, rv), = x['res'].items()
                text += ' -> ' + _val(rv) if rk == 'val' else ' !! ' + _exc(rv)
        elif kind == 'create':
            text = 'create %s #%d' % (x['name'], x['node'])
        elif kind == 'done':
            text = 'done %s: %s' % (names[x['task']], _fin(x['fin']))
        elif kind == 'inject':
            text = 'inject cancel %s -> %r' % (names[x['task']], x['ret'])
        elif kind == 'handler':
            text = 'handler: ' + x['msg']
            text += ' [%s]' % x['obj'] if 'obj' in x else ''
            text += ' ' + _exc(x['exc']) if 'exc' in x else ''
        else:
            text = '-- %s --' % x
        rows.append((_time(ev['t']), '-' if ev['task'] is None else names[ev['task']], text))
    w1 = max([len(r[0]) for r in rows] + [0])
    w2 = max([len(r[1]) for r in rows] + [0])
    out = ['events:']
    out += ['  %s  %s  %s' % (a.rjust(w1), b.ljust(w2), c) for a, b, c in rows]
    (ok, ov), = trace['outcome'].items()
    if ok == 'main':
        text = 'main ' + _fin(ov)
    elif ok == 'deadlock':
        text = 'deadlock: ' + '; '.join('%s awaits %s' % (names[w['task']], w['on']) for w in ov)
    elif ok == 'escaped':
        text = 'escaped ' + _exc(ov)
    else:
        text = ok
    out.append('outcome: ' + text)
    out.append('tasks:')
    w = max([len(n) for n in names] + [0])
    for t in trace['tasks']:
        st = t['state']
        st = st if isinstance(st, str) else _fin(st['done'])
        c = '?' if t['cancelling'] is None else str(t['cancelling'])
        out.append('  %s  %s  cancelling=%s' % (t['name'].ljust(w), st, c))
    return '\n'.join(out) + '\n'
