# attack: %%bash cell magic
# expect-rule: SKP102
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb527
# check: host_untouched
%%bash
echo "REACHED" "pb527"
sh -c {shell_payload}
