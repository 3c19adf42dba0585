"""``track``: eco2ai's decorator, as a decorator and a context manager over a ``TrackingSession``.

eco2ai's migration example keeps working::

    from hf_eco2ai import track

    @track(project_name="my-project", country_iso_code="FR")
    def train_model():
        for batch in loader:
            step(batch)
            track.current_session().mark_step()   # optional: per-step records

    train_model()
    print(train_model.carbon_report["total_co2_kg"])

    with track(project_name="my-project") as session:   # or around any block
        ...

Each call of a decorated function (each ``with`` block) is one run: its own session, its own
report, written to ``output_dir`` when the run ends.
"""

from __future__ import annotations

import contextvars
import functools
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, TypeVar, Union, overload

from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.observer import BackendFactory, BackendObserver, backend_factory
from hf_eco2ai.integrations.run_lifecycle import RunLifecycle, RunOptions
from hf_eco2ai.session import TrackingSession

__all__ = ["track", "Tracker", "current_session"]

F = TypeVar("F", bound=Callable[..., Any])

_current: "contextvars.ContextVar[Optional[TrackingSession]]" = contextvars.ContextVar(
    "hf_eco2ai_current_session", default=None
)


def current_session() -> Optional[TrackingSession]:
    """The session of the innermost ``track`` run in this thread or task, or None."""
    return _current.get()


class Tracker:
    """One ``track(...)`` call: a context manager, and a decorator whose every call is a run.

    After a run, ``report`` holds its ``tracking_data`` dict and ``report_paths`` the files
    written (``<output_dir>/carbon_report_<run id>.<ext>``).
    """

    def __init__(
        self, options: RunOptions, meter: Any, store: Any, make_backends: Optional[BackendFactory] = None
    ) -> None:
        self.options = options
        self.config = options.config
        self.report_formats = options.report_formats
        observers = [] if make_backends is None else [BackendObserver(make_backends)]
        self._lifecycle = RunLifecycle(options, framework="track", meter=meter, store=store, observers=observers)
        self._meter = meter
        self._store = store
        self._make_backends = make_backends
        self.report: Optional[Dict[str, Any]] = None
        self._token: Optional[contextvars.Token] = None

    @property
    def session(self) -> Optional[TrackingSession]:
        """The current (or last) run's session."""
        return self._lifecycle.session

    @property
    def report_paths(self) -> Dict[str, Path]:
        return self._lifecycle.report_paths

    def __enter__(self) -> TrackingSession:
        if self._lifecycle.running:
            raise ConfigurationError("this track() block is already running; nest a new track(...) instead")
        session = self._lifecycle.start()
        self._token = _current.set(session)
        return session

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        session = self._lifecycle.session
        if session is None:
            return
        self.report = self._lifecycle.finish(
            {}, status="failed" if exc_type is not None else "finished", write_outputs=session.rank_info.rank == 0
        )

    def __call__(self, func: F) -> F:
        if not callable(func):
            raise ConfigurationError(f"track(...) decorates a function; got {type(func).__name__}")
        tracker = self

        @functools.wraps(func)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            run = Tracker(tracker.options, tracker._take_meter(), tracker._store, tracker._make_backends)
            try:
                with run:
                    return func(*args, **kwargs)
            finally:
                tracked.carbon_report = run.report  # type: ignore[attr-defined]
                tracked.report_paths = run.report_paths  # type: ignore[attr-defined]

        tracked.carbon_report = None  # type: ignore[attr-defined]
        tracked.report_paths = {}  # type: ignore[attr-defined]
        return tracked  # type: ignore[return-value]

    def _take_meter(self) -> Any:
        """The meter given to ``track`` goes to the first run; later runs build their own."""
        meter, self._meter = self._meter, None
        return meter


@overload
def track(func: F) -> F: ...


@overload
def track(
    func: None = None,
    *,
    config: Optional[CarbonConfig] = None,
    meter: Any = None,
    store: Any = True,
    report_formats: Sequence[str] = ("json",),
    backends: Sequence[Any] = (),
    backend_options: Optional[Mapping[str, Any]] = None,
    **settings: Any,
) -> Tracker: ...


def track(
    func: Optional[F] = None,
    *,
    config: Optional[CarbonConfig] = None,
    meter: Any = None,
    store: Any = True,
    report_formats: Sequence[str] = ("json",),
    backends: Sequence[Any] = (),
    backend_options: Optional[Mapping[str, Any]] = None,
    **settings: Any,
) -> Union[F, Tracker]:
    """Track the energy and carbon of a function or a block.

    ``settings`` are ``CarbonConfig`` fields (``project_name``, ``country_iso_code``, ...) applied
    over ``config``. ``report_formats`` are written to ``output_dir`` at the end of each run
    (``json``, ``html``, ``csv``, ``csv-summary``, ``markdown``; empty writes none).

    ``backends`` (``"mlflow"``, ``"wandb"``, ``"tensorboard"``, ``"local"``, a plugin's name, or
    ``Backend`` objects) also receive each run's figures, provenance and report files, as with the
    Tracelet API; ``backend_options`` configures them (``mlflow_tracking_uri``, ``wandb_mode``...).

    Raises:
        ConfigurationError: an unknown or invalid setting (named with the fix), an unknown backend
            or one whose library is missing (naming the pip extra), at once.
    """
    if config is not None and not isinstance(config, CarbonConfig):
        raise ConfigurationError(f"config = {type(config).__name__} is invalid: expected a hf_eco2ai.CarbonConfig")
    if isinstance(report_formats, str):
        raise ConfigurationError(f"report_formats = {report_formats!r} is invalid: expected a list such as ['json']")
    base = config if config is not None else CarbonConfig()
    resolved = base.replace(**settings) if settings else base
    options = RunOptions.build(config=resolved, detailed_gpu_tracking=False, report_formats=report_formats)
    tracker = Tracker(options, meter, store, backend_factory(backends, backend_options, resolved.output_dir))
    if func is not None:
        return tracker(func)
    return tracker


track.current_session = current_session  # type: ignore[attr-defined]
