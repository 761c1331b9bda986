# attack: overwrite a file in the environment's etc/jupyter (Jupyter config is code) with
#   the builtin open()
# expect-rule: SKP240
# stage: runtime
# barrier: mount namespace (read-only bind) / landlock
# marker: REACHED fs108
# check: canary_unchanged
print('REACHED', 'fs108', flush=True)
with open({prefix_canary}, 'w') as f:
    f.write('pwned')
