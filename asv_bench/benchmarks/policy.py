"""The cost of numamap's NEP 49 policy on small arrays: a loop of np.empty(100) and np.add on
1 KiB arrays, with numpy's default handler and inside numamap.policy()."""
from numamap.bench import small_array_loop


def _policy():
    try:
        from numamap.memory_handler import policy
    except ImportError:
        return None
    return policy


def _current_handler():
    try:
        from numpy._core.multiarray import get_handler_name
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import get_handler_name
    return get_handler_name()


class SmallArrayLoop:
    params = (["default", "numamap.policy"],)
    param_names = ["handler"]
    iterations = 1000

    def setup(self, handler):
        self.manager = None
        if handler == "default":
            return
        factory = _policy()
        if factory is None:
            raise NotImplementedError("numamap.policy is not available in this build")
        default = _current_handler()
        self.manager = factory()
        self.manager.__enter__()
        if _current_handler() == default:
            raise RuntimeError("numamap.policy() did not install its handler")

    def teardown(self, handler):
        if getattr(self, "manager", None) is not None:
            self.manager.__exit__(None, None, None)
            self.manager = None

    def time_loop(self, handler):
        small_array_loop(self.iterations)
