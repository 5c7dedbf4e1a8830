"""Where and when runs train: the manager (start, queue, resume, cancel, stop, delete) and the
executors (a thread of this process, or a Ray task in a worker process). Knows nothing of HTTP."""
