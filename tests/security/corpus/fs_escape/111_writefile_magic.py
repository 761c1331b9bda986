# attack: overwrite a file in the environment's etc/jupyter with the %%writefile magic
# expect-rule: SKP240
# stage: runtime
# barrier: mount namespace (read-only bind) / landlock
# marker: Overwriting
# check: canary_unchanged
# xfail-on: BUG: %%writefile writes outside the allowed directories without SKP240: the audit
#   hook classifies IPython's open() as a library acting on its own, so the classroom policy
#   only records it
%%writefile {prefix_canary}
pwned by %%writefile
