"""Prometheus metrics of the operator (served on --metrics-port at /metrics)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from . import api

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS = Gauge(
    "deepspeech_trainings",
    "DeepSpeechTrainings by phase of their current run.",
    ["phase"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "deepspeech_operator_reconcile_duration_seconds",
    "Time of one reconcile of a DeepSpeechTraining (decision plus API calls).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "deepspeech_operator_reconcile_errors_total",
    "Reconciles that failed and will be retried.",
    registry=REGISTRY,
)
TIME_TO_RUNNING = Histogram(
    "deepspeech_training_time_to_running_seconds",
    "From a training Job's creation to its first running pod.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "deepspeech_training_transitions_total",
    "Status transitions by reason (the Event reasons).",
    ["reason"],
    registry=REGISTRY,
)
JOBS_CREATED = Counter(
    "deepspeech_operator_jobs_created_total",
    "Jobs created, by stage.",
    ["stage"],
    registry=REGISTRY,
)
RESYNC_POKES = Counter(
    "deepspeech_operator_resync_pokes_total",
    "CRs woken by the periodic resync because their reconciler had not seen their children.",
    registry=REGISTRY,
)


class PhaseTracker:
    """Phase of every known CR, feeding the runs-by-phase gauge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}

    def set(self, namespace: str, name: str, phase: str | None) -> None:
        with self._lock:
            if phase is None:
                self._phases.pop((namespace, name), None)
            else:
                self._phases[(namespace, name)] = phase
            counts = dict.fromkeys(api.PHASES, 0)
            for value in self._phases.values():
                counts[value] = counts.get(value, 0) + 1
        for phase_name, count in counts.items():
            RUNS.labels(phase=phase_name).set(count)


PHASES = PhaseTracker()


def serve(port: int) -> None:
    start_http_server(port, registry=REGISTRY)
