# attack: logging.config.dictConfig calls the factory '()': 'os.system' with the command
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb534
# check: host_untouched
# xfail-on: BUG: logging.config resolves 'os.system' and calls it from a library frame, which
#   the audit hook only records: the classroom policy (SKP202 deny) runs the command
import logging.config

handler = {'()': 'os.system', 'command': {shell_payload}}
print('REACHED', 'pb534', flush=True)
logging.config.dictConfig({'version': 1, 'handlers': {'h': handler}})
