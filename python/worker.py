# canceltree worker: reads one JSON request per line ({"src": program source}),
# runs it with the runtime above, and writes one JSON line back
# ({"trace": ...} or {"error": traceback}). Started once per interpreter.


def _serve():
    import json, traceback
    gc.disable()
    gc.freeze()  # the worker's own objects are never collected per case
    out = sys.stdout
    variant = 'pytask' if asyncio.Task.__module__ != '_asyncio' else 'ctask'
    out.write(json.dumps({'hello': sys.version.split()[0], 'tasks': variant, 'eager': EAGER}) + '\n')
    out.flush()
    base = dict(globals())
    for line in sys.stdin:
        try:
            req = json.loads(line)
            if 'batch' in req:
                reply = _batch(base, req['batch'])
            else:
                ns = dict(base)
                exec(compile(req['src'], '<program>', 'exec'), ns)
                reply = {'trace': run(ns['main'], ns['CORO'], req.get('inject', ()))}
        except BaseException:
            reply = {'error': traceback.format_exc()}
        ns = None
        out.write(json.dumps(reply) + '\n')
        out.flush()



def _batch(base, sources):
    # Benchmark: compile all first, then time only running them in-process,
    # with no JSON or pipe in between. Each program gets a fresh namespace
    # just before its run, as in the worker: kept alive, namespaces keep
    # their traces through N and every later (gc) would traverse them all.
    import time as _t
    codes = [compile(src, '<program>', 'exec') for src in sources]
    events = 0
    secs = 0.0
    for code in codes:
        ns = dict(base)
        exec(code, ns)
        start = _t.perf_counter()
        events += len(run(ns['main'], ns['CORO'])['events'])
        secs += _t.perf_counter() - start
        ns = None
    return {'secs': secs, 'events': events}


_serve()
