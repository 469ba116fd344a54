"""The optional imports of the float64 reference scripts (torch_reference.py,
hf_gpt2_reference.py): where one is missing the script is skipped, not failed."""
import importlib
import sys


def import_or_skip(*names):
    """Imports the named modules and returns them in order; where one is not importable,
    prints SKIPPED and exits 77 (ctest: SKIP_RETURN_CODE 77)."""
    try:
        return [importlib.import_module(name) for name in names]
    except Exception as e:  # pragma: no cover - depends on the machine
        packages = "/".join(dict.fromkeys(name.split(".")[0] for name in names))
        print(f"SKIPPED: {packages} not importable ({e})")
        sys.exit(77)
