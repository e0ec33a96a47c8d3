"""Query parameters of the API's listings: a filter backend that refuses the ones it does
not know, and the page size a client may ask for.

DRF and django-filter ignore a query parameter no filter reads, so ``GET /jobs?model_type=cnn``
answered with every job, as if the filter had matched them all. Here a parameter is known
when the view's filter set, its paginator or another of its filter backends reads it, or
it is DRF's ``format``; anything else is a 400 naming it and listing the known ones. Set
once in ``REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"]``, it covers every list (jobs, sweeps,
datasets) and the paginated lists under a detail (a job's tasks, a sweep's trials).

``StrictOrderingFilter`` does the same for ``?ordering=``: DRF's OrderingFilter drops a
field it does not know and sorts by the rest, or by nothing; here it is a 400 listing
the fields the view sorts by.
"""

from __future__ import annotations

from django.db.models import F
from django.forms import MultiWidget
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.widgets import SuffixedMultiWidget
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings


class Pagination(PageNumberPagination):
    """Pages of ``PAGE_SIZE`` items; ``?page_size=`` asks for 1 to ``max_page_size``."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        # DRF falls back to PAGE_SIZE on "0", "-5" or "all" and cuts 5000 to the maximum,
        # silently: a client that counts on the size it asked for is told instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isdigit() and 0 < int(raw) <= self.max_page_size):
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)


def _filter_parameters(filterset) -> set[str]:
    """The query parameters a filter set reads: a filter's name, or its widget's sub-names
    (``x_min`` and ``x_max`` for a range)."""
    names: set[str] = set()
    for name, field in filterset.form.fields.items():
        widget = field.widget
        if isinstance(widget, SuffixedMultiWidget):
            names.update(widget.suffixed(name, suffix) for suffix in widget.suffixes)
        elif isinstance(widget, MultiWidget):
            names.update(f"{name}_{i}" for i in range(len(widget.widgets)))
        else:
            names.add(name)
    return names


class StrictFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend that answers 400 to a query parameter nothing reads."""

    def known_parameters(self, request, queryset, view) -> set[str]:
        known = set()
        filterset = self.get_filterset(request, queryset, view)
        if filterset is not None:
            known |= _filter_parameters(filterset)
        paginator = getattr(view, "paginator", None)
        if paginator is not None:  # page, page_size (or limit and offset, or cursor)
            known |= {
                value
                for attr in dir(paginator)
                if attr.endswith("_query_param") and isinstance(value := getattr(paginator, attr), str)
            }
        for backend in getattr(view, "filter_backends", ()):
            if not issubclass(backend, DjangoFilterBackend):  # e.g. OrderingFilter's ordering, SearchFilter's search
                known |= {getattr(backend, a) for a in ("ordering_param", "search_param") if hasattr(backend, a)}
        if api_settings.URL_FORMAT_OVERRIDE:
            known.add(api_settings.URL_FORMAT_OVERRIDE)
        return known

    def filter_queryset(self, request, queryset, view):
        # Reads only: a POST that looks an object up (cancel, resume) takes no query parameters to filter by.
        if request.method in SAFE_METHODS:
            known = self.known_parameters(request, queryset, view)
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                listed = ", ".join(sorted(known)) or "none"
                raise ValidationError(
                    {name: [f"Unknown query parameter; this endpoint takes: {listed}."] for name in unknown}
                )
        return super().filter_queryset(request, queryset, view)


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=field`` or ``-field`` (descending), several comma-separated, among the
    view's ``ordering_fields``; anything else is a 400 listing them. Empty values (a job
    not yet evaluated) sort last in both directions, and ties keep the view's default
    order, then the primary key, so pages do not overlap."""

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw is None:
            return self.get_default_ordering(view)
        valid = [name for name, _ in self.get_valid_fields(queryset, view, {"request": request})]
        fields = [term.strip() for term in raw.split(",")]
        unknown = [term for term in fields if term.lstrip("-") not in valid or term.startswith("--")]
        if unknown or not fields:
            listed = ", ".join(valid)
            raise ValidationError(
                {
                    self.ordering_param: [
                        f"Unknown sort field {', '.join(map(repr, unknown or [raw]))}; sort by one of: {listed} "
                        "(a leading '-' sorts descending)."
                    ]
                }
            )
        return fields

    def filter_queryset(self, request, queryset, view):
        terms = self.get_ordering(request, queryset, view)
        if not terms or request.query_params.get(self.ordering_param) is None:
            return queryset
        order = [F(t[1:]).desc(nulls_last=True) if t.startswith("-") else F(t).asc(nulls_last=True) for t in terms]
        return queryset.order_by(*order, *(self.get_default_ordering(view) or ()), "pk")
