# attack: plant code in site-packages (a .pth file runs at every interpreter start)
# expect-rule: none
# stage: none (the policy lets cells write to site-packages, for pip install)
# barrier: mount namespace (read-only bind) / landlock
# marker: REACHED fs106
# check: canary_unchanged
print('REACHED', 'fs106', flush=True)
try:
    with open({pth_plant}, 'w') as f:
        f.write('# planted by a cell\n')
finally:
    with open({venv_canary}, 'a') as f:
        f.write('pwned')
