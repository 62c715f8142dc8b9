"""
The tm20 benchmark suite: C{python -m bench.run --full|--quick|--soak} (or C{make bench}).

  - L{bench.stats}: percentiles and median-of-runs summaries (pure).
  - L{bench.procinfo}: CPU and RSS of processes from C{/proc}, the open-files limit.
  - L{bench.wsclient}: a lean WebSocket client (raw frames) for thousands of terminals.
  - L{bench.loadgen}: the load-generator process, launched several times, driven over stdio.
  - L{bench.workers}: the driver's side of the load generators.
  - L{bench.server}: the real service (C{twistd tm20}) and its database, started and measured.
  - L{bench.workloads}: the workloads and the ceiling.
  - L{bench.report}: renders C{BENCHMARKS.md} (pure).
"""
