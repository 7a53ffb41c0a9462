# canceltree worker: reads one JSON request per line ({"src": the program's
# code, "coro": [[function, task name, node]...], "inject": [...]}), runs it
# with the runtime above, and writes one JSON line back ({"trace": ...} or
# {"error": traceback}). Started once per interpreter.
#
# The code is the exported script's program without its LABELS and CORO
# tables: the worker replies in JSON, so it needs no labels, and it gets CORO
# as data, so compile(), the costliest step of a case, does not parse them.


def _serve():
    import json, traceback
    gc.disable()
    gc.freeze()  # the worker's own objects are never collected per case
    # One encoder for every reply: json.dumps with options builds a new one
    # per call. A trace is a tree (shared leaves at most), so the cycle
    # check only costs time; compact separators shorten the line to parse.
    dumps = json.JSONEncoder(check_circular=False, separators=(',', ':')).encode
    out = sys.stdout
    variant = 'pytask' if asyncio.Task.__module__ != '_asyncio' else 'ctask'
    out.write(json.dumps({'hello': sys.version.split()[0], 'tasks': variant, 'eager': EAGER}) + '\n')
    out.flush()
    base = dict(globals())
    for line in sys.stdin:
        _isolate()
        try:
            req = json.loads(line)
            if 'batch' in req:
                reply = _batch(base, req['batch'])
            else:
                ns = dict(base)
                exec(compile(req['src'], '<program>', 'exec'), ns)
                # Called here, directly from _serve as the exported script
                # does, so that a RecursionError strikes at the same depth.
                reply = {'trace': run(ns['main'], _coro(req['coro']), req['inject'])}
        except BaseException:
            reply = {'error': traceback.format_exc()}
        ns = None
        out.write(dumps(reply) + '\n')
        out.flush()


def _isolate():
    # Each case starts with the collector as the first case after start-up
    # found it: every generation empty. What earlier cases left alive (the
    # namespaces they defined, caches filled on first use such as a module
    # imported by as_completed) would otherwise sit in the generations a
    # `(gc)` scans, and change the order in which it leaves, and later
    # finalizes, this case's objects: the same program could print another
    # trace after some other program than alone. Their garbage is collected
    # first, so that only what is alive is frozen.
    gc.collect()
    gc.freeze()


def _coro(rows):
    # The CORO table of the exported script: function name -> (task, node).
    return {fname: (task, node) for fname, task, node in rows}


def _batch(base, sources):
    # Benchmark: compile all first, then time only running them in-process,
    # with no JSON or pipe in between. Each program gets a fresh namespace
    # just before its run, as in the worker: kept alive, namespaces keep
    # their traces through N and every later (gc) would traverse them all.
    import time as _t
    # Only untracked objects stay alive across the runs (code objects, and
    # tuples of strings and ints once a collection has seen them): a full
    # collection at a (gc) would traverse every request dict or table kept.
    codes = [(compile(req['src'], '<program>', 'exec'), tuple(map(tuple, req['coro']))) for req in sources]
    sources.clear()
    events = 0
    secs = 0.0
    for code, rows in codes:
        _isolate()
        ns = dict(base)
        exec(code, ns)
        coro = _coro(rows)
        start = _t.perf_counter()
        events += len(run(ns['main'], coro)['events'])
        secs += _t.perf_counter() - start
        ns = coro = None
    return {'secs': secs, 'events': events}


_serve()
