# attack: multiprocessing.Process(target=os.system) via pkgutil.resolve_name
# expect-rule: SKP203 (the fork multiprocessing makes for the cell is refused before the
#   target, os.system, could run in the child)
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb535
# check: host_untouched
import multiprocessing
import pkgutil

target = pkgutil.resolve_name('os:system')
child = multiprocessing.get_context('fork').Process(target=target, args=({shell_payload},))
print('REACHED', 'pb535', flush=True)
child.start()
child.join()
