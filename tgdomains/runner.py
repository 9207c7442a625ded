"""Old import path of the run loop, kept so existing scripts run: see `tgdomains.run` and `tgdomains.strategies`."""

from tgdomains.run import RunConfig, RunResult, default_run_dir, optimize, resume

__all__ = ["RunConfig", "RunResult", "default_run_dir", "optimize", "resume"]
