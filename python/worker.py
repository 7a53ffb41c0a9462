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
            ns = dict(base)
            exec(compile(json.loads(line)['src'], '<program>', 'exec'), ns)
            reply = {'trace': run(ns['main'], ns['CORO'])}
        except BaseException:
            reply = {'error': traceback.format_exc()}
        ns = None
        out.write(json.dumps(reply) + '\n')
        out.flush()


_serve()
