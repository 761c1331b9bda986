# attack: logging.config.dictConfig calls the factory '()': 'os.system' with the command
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb534
# check: host_untouched
import logging.config

handler = {'()': 'os.system', 'command': {shell_payload}}
print('REACHED', 'pb534', flush=True)
logging.config.dictConfig({'version': 1, 'handlers': {'h': handler}})
