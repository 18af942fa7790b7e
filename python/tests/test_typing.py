"""Type hints on the public API (PEP 561: the package ships py.typed): every
public function and method of lmdisc and lmdisc.aio annotates its parameters
and its return type, and the annotations resolve."""

import inspect
import os
import sys
import typing
import unittest

import lmdisc
import lmdisc.aio
import lmdisc.registry


def public_callables():
    seen = set()
    for mod in (lmdisc, lmdisc.aio):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isclass(obj):
                if issubclass(obj, BaseException) or typing.NamedTuple in getattr(obj, "__orig_bases__", ()):
                    continue  # exceptions and named tuples: their fields are the API
                for mname, member in vars(obj).items():
                    if callable(member) and (not mname.startswith("_") or mname in ("__init__", "__aenter__",
                                                                                     "__enter__", "__anext__")):
                        yield f"{mod.__name__}.{name}.{mname}", member
            elif callable(obj):
                yield f"{mod.__name__}.{name}", obj
    yield "lmdisc.REGISTRY.list_alive", type(lmdisc.registry.REGISTRY).list_alive
    yield "lmdisc.REGISTRY.nodes", type(lmdisc.registry.REGISTRY).nodes


class TypingTest(unittest.TestCase):
    def test_py_typed_is_in_the_package(self):
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(lmdisc.__file__), "py.typed")))

    def test_public_functions_are_annotated(self):
        missing = []
        for name, fn in public_callables():
            fn = getattr(fn, "__func__", fn)
            if isinstance(fn, property) or not (inspect.isfunction(fn) or inspect.ismethod(fn)):
                continue
            sig = inspect.signature(fn)
            for p in sig.parameters.values():
                if p.name in ("self", "cls", "__dataclass_self__") or p.kind in (p.VAR_POSITIONAL,):
                    continue
                if p.annotation is inspect.Parameter.empty:
                    missing.append(f"{name}({p.name})")
            if sig.return_annotation is inspect.Signature.empty:
                missing.append(f"{name} -> ?")
            if sys.version_info >= (3, 10):  # X | None is evaluated at run time from 3.10 on
                typing.get_type_hints(fn, vars(inspect.getmodule(fn)))  # the annotations resolve
        self.assertEqual(missing, [])


if __name__ == "__main__":
    unittest.main()
