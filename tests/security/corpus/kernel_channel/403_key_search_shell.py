# attack: grep the places Jupyter keeps connection files for the HMAC key
# expect-rule: SKP101
# stage: static
# barrier: mount namespace / landlock (runtime directories are not in the sandbox's view)
# marker: REACHED kc403
# check: hmac_key_absent
print('REACHED', 'kc403', flush=True)
!grep -rs '"key"' {connection_dir} /run/user ~/.local/share/jupyter/runtime 2>&1 | head -n 20
