# canceltree worker prelude: chooses the variant before asyncio is imported.
# The pure-Python Task and Future are only fully in effect when the C module
# _asyncio is blocked first; a task factory alone leaves C futures in sleep
# and gather.
import sys
if '--pytask' in sys.argv:
    sys.modules['_asyncio'] = None
