from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "jobs.schedules"
    label = "schedules"
    verbose_name = "Scheduled retraining"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete

        from jobs import signals
        from jobs.schedules import receivers, services
        from jobs.schedules.models import Schedule

        signals.job_ended.connect(receivers.on_job_ended, dispatch_uid="schedules.on_job_ended")
        # However a schedule goes (the API, the admin, its owner deleted), its beat entry goes too.
        post_delete.connect(services.schedule_rows_deleted, sender=Schedule, dispatch_uid="schedules.deleted")
