# attack: multiprocessing.Process(target=os.system) via pkgutil.resolve_name
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb535
# check: host_untouched
# xfail-on: BUG: the fork and the call of the target happen in multiprocessing's frames, which
#   the audit hook only records: the classroom policy (SKP202/SKP203 deny) runs the command in
#   a child
import multiprocessing
import pkgutil

target = pkgutil.resolve_name('os:system')
child = multiprocessing.get_context('fork').Process(target=target, args=({shell_payload},))
print('REACHED', 'pb535', flush=True)
child.start()
child.join()
