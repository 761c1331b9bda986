# attack: read the kernel's connection file (HMAC key, ports) with a child process
# expect-rule: SKP202
# stage: static
# barrier: mount namespace / landlock (the path is outside the sandbox's view)
# marker: REACHED fs103
# check: hmac_key_absent
import subprocess

print('REACHED', 'fs103', flush=True)
done = subprocess.run(['cat', {connection_file}], capture_output=True, text=True)
print(done.stdout, done.stderr)
