# attack: overwrite a file in the environment's etc/jupyter with the %%writefile magic
# expect-rule: SKP240
# stage: runtime
# barrier: mount namespace (read-only bind) / landlock
# marker: Overwriting
# check: canary_unchanged
%%writefile {prefix_canary}
pwned by %%writefile
