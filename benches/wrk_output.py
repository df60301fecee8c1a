"""Reading wrk's --latency output, for the benchmark scripts."""
import re


class Run:
    """One wrk run: requests/s, p50 and p99 in ms, non-2xx answers, socket errors."""

    def __init__(self, path):
        text = open(path).read()
        self.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        self.p50, self.p99 = (self._percentile(text, p) for p in (50, 99))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        self.non2xx = int(non2xx.group(1)) if non2xx else 0
        socket_errors = re.search(r"Socket errors: (.*)", text)
        self.socket_errors = socket_errors.group(1) if socket_errors else None

    @staticmethod
    def _percentile(text, p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def clean(path, name):
    """The run in `path`; exits naming `name` if any answer was not 2xx."""
    run = Run(path)
    if run.non2xx:
        raise SystemExit(f"{name}: {run.non2xx} non-2xx responses")
    return run
