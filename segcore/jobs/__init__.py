"""Runs waiting and running: the queue, the launchers (local processes or Ray Jobs), the worker process, the
scheduler, the classroom's rules (owners, fairness, limits), comparison plans and time estimates."""
