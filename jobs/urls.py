from rest_framework.routers import DefaultRouter

from jobs.apis import JobViewSet


class OptionalSlashRouter(DefaultRouter):
    """Routes that match with and without a trailing slash (a POST is never redirected)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("jobs", JobViewSet, basename="job")

urlpatterns = router.urls
