"""The catalogue of dangerous names: modules, qualified callables and attributes, by rule.

Qualified names are spelled as the analyzer resolves them: ``os.system``,
``builtins.eval``, and ``get_ipython()`` for the IPython shell object, so
``get_ipython().system`` is the shell-escape method. Both the static checker and the
runtime audit hooks read these tables.
"""

from __future__ import annotations

import builtins
import functools

__all__ = [
    "ATTRIBUTE_RULES",
    "BUILTIN_NAMES",
    "DECODERS",
    "DECODER_METHODS",
    "EXEC_LIKE",
    "FORBIDDEN_STRINGS",
    "GETATTR_LIKE",
    "IMPORT_LIKE",
    "IPYTHON_PIPELINE_ATTRS",
    "MODULE_RULES",
    "NAME_RULES",
    "PAYLOAD_SINKS",
    "PICKLE_LOADERS",
    "SENSITIVE",
    "SHELL_METHODS",
    "SYS_IMPORT_STATE",
    "dangerous_global",
    "rule_for_module",
    "rule_for_name",
    "rule_for_qualname",
]

# Modules whose import or use is a finding; their submodules and attributes count too.
MODULE_RULES: dict[str, str] = {
    "ctypes": "SKP201",
    "_ctypes": "SKP201",
    "cffi": "SKP201",
    "_cffi_backend": "SKP201",
    "numpy.ctypeslib": "SKP201",
    "subprocess": "SKP202",
    "_posixsubprocess": "SKP202",
    "pty": "SKP202",
    "pexpect": "SKP202",
    "ptyprocess": "SKP202",
    "asyncio.subprocess": "SKP202",
    "socket": "SKP204",
    "_socket": "SKP204",
    "socketserver": "SKP204",
    # libzmq opens its own sockets in C: no audit event ever sees them.
    "zmq": "SKP204",
    # The executor's own machinery (its audit hooks among it) is not for cells.
    "sandbox_kernel": "SKP209",
    "importlib.util": "SKP206",
    "importlib.machinery": "SKP206",
    "importlib.abc": "SKP206",
    "importlib._bootstrap": "SKP206",
    "importlib._bootstrap_external": "SKP206",
    "_frozen_importlib": "SKP206",
    "_frozen_importlib_external": "SKP206",
    "_imp": "SKP206",
    "imp": "SKP206",
    "zipimport": "SKP206",
    "runpy": "SKP206",
    # The site objects' module: it holds sys, and help() reaches pydoc's pagers.
    "_sitebuiltins": "SKP221",
    "_testcapi": "SKP207",
    "_testinternalcapi": "SKP207",
    "_xxsubinterpreters": "SKP207",
    "sys.monitoring": "SKP208",
}

_PROCESS_FUNCS = [
    "system",
    "popen",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "posix_spawn",
    "posix_spawnp",
    "startfile",
]
_CONTROL_FUNCS = ["fork", "forkpty", "kill", "killpg", "register_at_fork"]

# Qualified names (functions and attributes) whose use is a finding, by rule.
CALL_RULES: dict[str, str] = {
    **{f"{m}.{f}": "SKP202" for m in ("os", "posix", "nt") for f in _PROCESS_FUNCS},
    **{f"{m}.{f}": "SKP203" for m in ("os", "posix") for f in _CONTROL_FUNCS},
    # pydoc's pagers run the command they are given (or $PAGER) in a shell
    "pydoc.pipepager": "SKP202",
    "pydoc.tempfilepager": "SKP202",
    "asyncio.create_subprocess_exec": "SKP202",
    "asyncio.create_subprocess_shell": "SKP202",
    "IPython.utils.process.system": "SKP202",
    "IPython.utils.process.getoutput": "SKP202",
    "IPython.utils.process.getoutputerror": "SKP202",
    "IPython.utils.process.get_output_error_code": "SKP202",
    "signal.pthread_kill": "SKP203",
    "signal.pidfd_send_signal": "SKP203",
    "os.pidfd_open": "SKP203",
    **{
        f"{m}.{f}": "SKP205"
        for m in ("signal", "_signal")
        for f in ("signal", "siginterrupt", "pthread_sigmask", "set_wakeup_fd")
    },
    "gc.get_referrers": "SKP207",
    "gc.get_referents": "SKP207",
    "gc.get_objects": "SKP207",
    "sys._getframe": "SKP207",
    "sys._getframemodulename": "SKP207",
    "sys._current_frames": "SKP207",
    "sys._current_exceptions": "SKP207",
    "inspect.currentframe": "SKP207",
    "inspect.stack": "SKP207",
    "inspect.trace": "SKP207",
    "inspect.getouterframes": "SKP207",
    "inspect.getinnerframes": "SKP207",
    "traceback.walk_stack": "SKP207",
    "sys.settrace": "SKP208",
    "sys.setprofile": "SKP208",
    "sys.call_tracing": "SKP208",
    "threading.settrace": "SKP208",
    "threading.setprofile": "SKP208",
    "threading.settrace_all_threads": "SKP208",
    "threading.setprofile_all_threads": "SKP208",
    "sys.addaudithook": "SKP209",
    "sys.audit": "SKP209",
    "sys.meta_path": "SKP210",
    "sys.path_hooks": "SKP210",
    "sys.path_importer_cache": "SKP210",
    # like %run: the file's code runs (checked only at run time, as it is compiled)
    "builtins.execfile": "SKP110",
    "builtins.runfile": "SKP110",
    # an interpreter inside the cell runs what it is fed, which this policy never sees
    "code.interact": "SKP230",
    "code.InteractiveConsole": "SKP230",
    "code.InteractiveInterpreter": "SKP230",
    "types.CodeType": "SKP233",
    "types.FunctionType": "SKP233",
    "types.LambdaType": "SKP233",
    "marshal.loads": "SKP233",
    "marshal.load": "SKP233",
}

# Callables that run source text; their argument decides (a literal is checked in turn).
# name -> index of the source argument, keyword names, and whether a non-string argument
# may be a callable (timeit and friends take either) rather than computed code.
EXEC_LIKE: dict[str, tuple[int, tuple[str, ...], bool]] = {
    "builtins.exec": (0, ("source",), False),
    "builtins.eval": (0, ("source", "expression"), False),
    "builtins.compile": (0, ("source",), False),
    "get_ipython().run_cell": (0, ("raw_cell",), False),
    "get_ipython().run_cell_async": (0, ("raw_cell",), False),
    "get_ipython().ex": (0, ("cmd",), False),
    "get_ipython().ev": (0, ("expr",), False),
    "get_ipython().var_expand": (0, ("cmd",), False),
    "code.compile_command": (0, ("source",), False),
    "codeop.compile_command": (0, ("source",), False),
    "cProfile.run": (0, ("statement",), False),
    "cProfile.runctx": (0, ("statement",), False),
    "profile.run": (0, ("statement",), False),
    "profile.runctx": (0, ("statement",), False),
    "pdb.run": (0, ("statement",), False),
    "pdb.runeval": (0, ("expression",), False),
    "pdb.runctx": (0, ("statement",), False),
    "timeit.timeit": (0, ("stmt", "setup"), True),
    "timeit.repeat": (0, ("stmt", "setup"), True),
    "timeit.Timer": (0, ("stmt", "setup"), True),
}

IMPORT_LIKE = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__"})

# name -> which positional argument is the attribute name (-1: every argument).
GETATTR_LIKE: dict[str, int] = {
    "builtins.getattr": 1,
    "builtins.setattr": 1,
    "builtins.delattr": 1,
    "builtins.hasattr": 1,
    "inspect.getattr_static": 1,
    "operator.attrgetter": -1,
}
# Explicit dunder lookups: x.__getattribute__(name), object.__getattribute__(x, name).
DUNDER_GETATTRS = frozenset({"__getattribute__", "__getattr__", "__setattr__", "__delattr__"})

# Attribute names that are findings on any object.
ATTRIBUTE_RULES: dict[str, str] = {
    "__subclasses__": "SKP220",
    # Reading a class's own ancestors is introspection, not an escape (SKP226 is audit
    # under the standard preset): np.float64.mro() is teaching code.
    **dict.fromkeys(("__mro__", "__bases__", "__base__"), "SKP226"),
    **dict.fromkeys(
        ("__globals__", "__builtins__", "__code__", "__closure__", "__self__"), "SKP221"
    ),
    **dict.fromkeys(
        [
            "gi_frame",
            "gi_code",
            "cr_frame",
            "cr_code",
            "ag_frame",
            "ag_code",
            "f_globals",
            "f_locals",
            "f_back",
            "f_builtins",
            "f_code",
            "f_trace",
            "tb_frame",
        ],
        "SKP222",
    ),
    **dict.fromkeys(("__loader__", "__spec__"), "SKP223"),
    **dict.fromkeys(("__reduce__", "__reduce_ex__"), "SKP224"),
}

# Bare names that differ from the attribute of the same name: the name __builtins__ is
# the builtins module itself (what `import builtins` gives), while the attribute
# f.__builtins__ reaches another function's builtins.
NAME_RULES: dict[str, str] = {"__builtins__": "SKP227"}


def rule_for_name(name: str) -> str | None:
    """The rule of a bare dunder name such as ``__builtins__`` (not an attribute)."""
    return NAME_RULES.get(name, ATTRIBUTE_RULES.get(name))


# Shell methods of the IPython shell object (what '!cmd' and '!!cmd' become).
SHELL_METHODS = frozenset({"system", "getoutput", "system_piped", "system_raw"})

# Attributes of the IPython shell that rewrite cells after the check.
IPYTHON_PIPELINE_ATTRS = frozenset(
    {
        "input_transformers_cleanup",
        "input_transformers_post",
        "input_transformer_manager",
        "ast_transformers",
        "prefilter_manager",
        "input_splitter",
    }
)

# Attributes of sys whose assignment or mutation is import-system surgery.
SYS_IMPORT_STATE = frozenset(
    {"modules", "meta_path", "path_hooks", "path_importer_cache", "audit", "addaudithook"}
)

# Objects on which a computed attribute, key or magic name is suspicious in itself.
SENSITIVE = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "sys.modules",
        "builtins",
        "builtins.__dict__",
        "subprocess",
        "ctypes",
        "_ctypes",
        "cffi",
        "importlib",
        "gc",
        "inspect",
        "socket",
        "pty",
        "signal",
        "marshal",
        "get_ipython()",
    }
)

# Functions that turn encoded data into code or bytes (the first half of a payload).
DECODERS = frozenset(
    {
        "base64.b64decode",
        "base64.standard_b64decode",
        "base64.urlsafe_b64decode",
        "base64.b32decode",
        "base64.b32hexdecode",
        "base64.b16decode",
        "base64.b85decode",
        "base64.a85decode",
        "base64.z85decode",
        "base64.decodebytes",
        "binascii.a2b_base64",
        "binascii.a2b_hex",
        "binascii.unhexlify",
        "binascii.a2b_uu",
        "binascii.a2b_qp",
        "zlib.decompress",
        "bz2.decompress",
        "lzma.decompress",
        "gzip.decompress",
        "codecs.decode",
        "codecs.encode",
        "builtins.bytes.fromhex",
        "builtins.bytearray.fromhex",
        "marshal.loads",
        "pickle.loads",
        "_pickle.loads",
        "quopri.decodestring",
    }
)
DECODER_METHODS = frozenset(
    {
        "decode",
        "fromhex",
        "translate",
        "decompress",
        "unhexlify",
        "b64decode",
        "b32decode",
        "b16decode",
        "b85decode",
        "a85decode",
        "urlsafe_b64decode",
        "loads",
    }
)

PICKLE_LOADERS = frozenset(
    {"pickle.loads", "_pickle.loads", "pickle._loads", "dill.loads", "cloudpickle.loads"}
)

# Where a decoded payload ends up running (the second half of a payload).
PAYLOAD_SINKS = frozenset(
    set(EXEC_LIKE)
    | IMPORT_LIKE
    | PICKLE_LOADERS
    | {"pickle.load", "marshal.loads", "marshal.load", "types.FunctionType", "types.CodeType"}
)

# Names worth hiding: when a computed string (or a look-alike identifier) spells one of
# these, it is a bypass attempt. Deliberately specific: generic words such as "run",
# "load" or "stack" would flag ordinary code.
FORBIDDEN_STRINGS = frozenset(
    {
        # modules
        "os",
        "posix",
        "nt",
        "sys",
        "builtins",
        "__builtin__",
        "subprocess",
        "_posixsubprocess",
        "ctypes",
        "_ctypes",
        "cffi",
        "pty",
        "socket",
        "_socket",
        "importlib",
        "marshal",
        "gc",
        "runpy",
        "imp",
        "zipimport",
        # callables
        *_PROCESS_FUNCS,
        "fork",
        "forkpty",
        "killpg",
        "Popen",
        "check_output",
        "getoutput",
        "getstatusoutput",
        "eval",
        "exec",
        "compile",
        "execfile",
        "__import__",
        "import_module",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "addaudithook",
        "_getframe",
        "settrace",
        "setprofile",
        "get_referrers",
        "get_referents",
        "get_objects",
        "currentframe",
        "CDLL",
        "PyDLL",
        "LoadLibrary",
        "dlopen",
        "pythonapi",
        "get_ipython",
        "run_line_magic",
        "run_cell_magic",
        "system_raw",
        "system_piped",
        "__getattribute__",
        "__dict__",
        # attributes
        *ATTRIBUTE_RULES,
    }
)

# With the two builtins the executor adds, as the stock kernel has them.
BUILTIN_NAMES = frozenset(dir(builtins)) | {"execfile", "runfile"}


@functools.lru_cache(maxsize=8192)
def rule_for_module(name: str) -> str | None:
    """The rule of module ``name`` or of the nearest enclosing package listed, if any."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        rule = MODULE_RULES.get(".".join(parts[:i]))
        if rule is not None:
            return rule
    return None


@functools.lru_cache(maxsize=8192)
def rule_for_qualname(qualname: str) -> str | None:
    """The rule that covers using ``qualname`` (a module, function or attribute)."""
    rule = CALL_RULES.get(qualname)
    if rule is not None:
        return rule
    return rule_for_module(qualname)


_DANGEROUS_PICKLE_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "ctypes",
        "_ctypes",
        "cffi",
        "socket",
        "_socket",
        "pty",
        "pexpect",
        "sys",
        "importlib",
        "runpy",
        "marshal",
        "code",
        "codeop",
        "shutil",
        "webbrowser",
        "asyncio.subprocess",
        "pdb",
        "timeit",
        "cProfile",
        "profile",
        "IPython.utils.process",
    }
)
_DANGEROUS_PICKLE_BUILTINS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "open",
        "input",
        "execfile",
    }
)


def dangerous_global(module: str, name: str) -> bool:
    """Whether a pickle that refers to ``module.name`` can run code when it is loaded."""
    top = module.split(".", maxsplit=1)[0]
    if module in _DANGEROUS_PICKLE_MODULES or top in _DANGEROUS_PICKLE_MODULES:
        return True
    if module in ("builtins", "__builtin__"):
        return name in _DANGEROUS_PICKLE_BUILTINS
    if module == "types":
        return name in ("CodeType", "FunctionType", "LambdaType")
    if module in ("operator", "_operator"):
        # attrgetter/methodcaller gadgets turn any object into a call chain
        return name in ("attrgetter", "methodcaller")
    return rule_for_qualname(f"{module}.{name}") is not None
