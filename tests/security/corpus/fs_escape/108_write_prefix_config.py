# attack: overwrite a file in the environment's etc/jupyter (Jupyter config is code) with
#   the builtin open()
# expect-rule: SKP240
# stage: runtime
# barrier: mount namespace (read-only bind) / landlock
# marker: REACHED fs108
# check: canary_unchanged
# xfail-on: BUG: SKP240 never fires for the builtin open() in a cell: IPython puts its own
#   open (_modified_open in IPython/core/interactiveshell.py) in the user namespace, and the
#   audit hook classifies that frame as a library acting on its own, so it only records the write
print('REACHED', 'fs108', flush=True)
with open({prefix_canary}, 'w') as f:
    f.write('pwned')
