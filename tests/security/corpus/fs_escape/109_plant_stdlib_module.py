# attack: plant a module in the standard library directory
# expect-rule: SKP240
# stage: runtime
# barrier: mount namespace (read-only bind) / landlock
# marker: REACHED fs109
# check: canary_unchanged
import pathlib

print('REACHED', 'fs109', flush=True)
pathlib.Path({stdlib_plant}).write_text('print("planted")\n')
