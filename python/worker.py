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
    # with no JSON or pipe in between.
    import time as _t
    mains = []
    for src in sources:
        ns = dict(base)
        exec(compile(src, '<program>', 'exec'), ns)
        mains.append((ns['main'], ns['CORO']))
    gc.freeze()  # or every run's final collection would traverse all of them
    events = 0
    start = _t.perf_counter()
    for main, coros in mains:
        events += len(run(main, coros)['events'])
    return {'secs': _t.perf_counter() - start, 'events': events}


_serve()
