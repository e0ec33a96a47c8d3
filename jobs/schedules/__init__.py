"""Scheduled retraining: a schedule holds a cron expression, a job spec (its dataset by
name, so each run trains on the newest version) and an optional promotion rule. Beat
(django-celery-beat's DatabaseScheduler) starts each run from a PeriodicTask the schedule
keeps in step; a run is an ordinary job, and when it succeeds with a metric that beats
the version behind the rule's alias, it is registered and the alias moved.

A nested app (label ``schedules``); it imports jobs and jobs.registry, nothing in the
core of jobs imports it.
"""
