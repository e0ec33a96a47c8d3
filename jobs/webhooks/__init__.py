"""Webhooks: endpoints a user registers for events (a job ended, a sweep finished, a
model version made or an alias moved, a scheduled run finished), each event delivered
as a signed JSON POST by a Celery task on the control queue, retried with backoff, every
attempt logged (GitHub's conventions). A nested app (label ``webhooks``) that listens to
signals; nothing in the core of jobs imports it.
"""
