"""Hold a writer in another process at a known point, so that a test's kill always lands
there (never a race against a machine fast enough to finish first).

Every Python process started with :func:`hold_env`'s environment (``dagster dev``'s run
workers, a multiprocess executor's step processes) loads a ``sitecustomize`` written by the
test (first on PYTHONPATH). When the process imports ``module``, the test's ``patch(module)``
is applied; the patch calls ``hold()`` where the writer must wait. ``hold()`` records the
process's pid in ``<hold dir>/held`` and waits while ``<hold dir>/hold`` exists: the test
waits for :func:`held_pid`, kills that process, and :func:`release`\\ s the hold so the next
run goes straight through. Nothing of the product is replaced: the patch only waits, then
calls the original.
"""

import os
import textwrap
from pathlib import Path

_SITECUSTOMIZE = textwrap.dedent('''
    import os, sys, time
    from importlib.abc import MetaPathFinder
    from importlib.machinery import PathFinder

    HOLD_DIR = os.environ["ASSETS_PKG_TEST_HOLD_DIR"]

    def hold():
        """While <hold dir>/hold exists: this pid into <hold dir>/held, and wait."""
        if not os.path.exists(os.path.join(HOLD_DIR, "hold")):
            return
        staged = os.path.join(HOLD_DIR, f"held.{os.getpid()}")
        with open(staged, "w") as out:
            out.write(str(os.getpid()))
        os.replace(staged, os.path.join(HOLD_DIR, "held"))
        while os.path.exists(os.path.join(HOLD_DIR, "hold")):
            time.sleep(0.05)

    class _PatchOnImport(MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != MODULE:
                return None
            spec = PathFinder.find_spec(name, path)
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec
''')


def hold_env(env: dict, hold_dir: Path, module: str, patch_source: str) -> dict:
    """``env`` with the hold armed: ``patch_source`` defines ``patch(module)`` (it may call
    ``hold()``), applied when a process imports ``module``."""
    hook = hold_dir / "hook"
    hook.mkdir(parents=True)
    code = (_SITECUSTOMIZE + f"\nMODULE = {module!r}\n" + textwrap.dedent(patch_source)
            + "\nsys.meta_path.insert(0, _PatchOnImport())\n")
    (hook / "sitecustomize.py").write_text(code)
    (hold_dir / "hold").touch()
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")])),
            "ASSETS_PKG_TEST_HOLD_DIR": str(hold_dir)}


def held_pid(hold_dir: Path) -> int | None:
    """The pid of the process waiting in ``hold()``, once one does."""
    held = hold_dir / "held"
    return int(held.read_text()) if held.exists() else None


def release(hold_dir: Path) -> None:
    """Let a held process (and every later one) go on."""
    (hold_dir / "hold").unlink()
