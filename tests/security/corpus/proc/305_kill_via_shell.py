# attack: kill host processes with /bin/kill in a child process
# expect-rule: SKP202
# stage: static
# barrier: pid namespace / Landlock signal scope
# marker: REACHED proc305
# check: marker_alive, kernel_alive
import subprocess

print('REACHED', 'proc305', flush=True)
done = subprocess.run(
    ['kill', '-9', str({marker_pid}), str({kernel_pid})], capture_output=True, text=True
)
print(done.returncode, done.stderr)
