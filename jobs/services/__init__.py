"""Writes to jobs, split by what they change:

* ``lifecycle``: a job as a whole (create, cancel, fail, resume, delete);
* ``claims``: a job's tasks (rows, claims, heartbeats, ends);
* ``launch``: starting an epoch (rows, then its chord);
* ``epochs``: a finished epoch, and the one decision of what follows it;
* ``failures``: what a task's final failure means for its job;
* ``sweeps``: hyperparameter sweeps and their trials.

Callers import the submodule they need (``from jobs.services import lifecycle``).
"""
