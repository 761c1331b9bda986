# attack: exec() of a marshalled code object (CPython 3.11 bytecode)
# expect-rule: SKP233
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb511
# check: host_untouched
import marshal

payload = {shell_payload}
blob = bytes.fromhex(
    '630000000000000000000000000300000000000000f32e0000009700640064016c005a00020065006a01'
    '00000000000000006502a6010000ab0100000000000000000100640153002902e9000000004e2903da026f'
    '73da0673797374656dda077061796c6f6164a900f300000000fa093c7061796c6f61643efa083c6d6f6475'
    '6c653e7208000000010000007325000000f003010101d80009800980098009883988328c399057d10b1dd4'
    '0b1dd00b1dd00b1dd00b1d7206000000'
)
print('REACHED', 'pb511', flush=True)
exec(marshal.loads(blob))
