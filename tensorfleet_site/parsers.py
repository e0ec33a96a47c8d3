"""Request bodies the API will not parse, refused with a 4xx that says why.

* JSON nested deeper than TENSORFLEET_MAX_JSON_DEPTH: 5,000 levels raised RecursionError
  inside the JSON decoder (a 500), and a few hundred levels, which the decoder accepts,
  would recurse again in every serializer and renderer that walks the data.
* A body sent with ``Transfer-Encoding: chunked`` and no Content-Length: Django reads
  a request body by its Content-Length only, so the body came through as empty and the
  client got "this field is required" for fields it had sent. gunicorn does decode
  chunked bodies, but Django's request never reads past the declared length, so the
  honest answer is 411 Length Required.
* A non-file body over DATA_UPLOAD_MAX_MEMORY_SIZE: Django refused it with an HTML page
  saying only "Bad Request"; here it is a 413 that names the limit.
* Forms with more fields or files than DATA_UPLOAD_MAX_NUMBER_FIELDS and _FILES: Django
  refused them with the same bare HTML page; here they are 400s that say which limit.
* A file past FILE_UPLOAD_MAX_MEMORY_SIZE whose name has a long non-ASCII extension:
  Django names its temporary file ``<random>.upload<extension>``, past the file
  system's 255 bytes (OSError, a 500); ``TemporaryFileUploadHandler`` does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.core.files.uploadhandler import TemporaryFileUploadHandler as DjangoTemporaryFileUploadHandler
from django.http import JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def json_depth(data) -> int:
    """How deeply lists and objects nest in ``data`` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing documents nested deeper than TENSORFLEET_MAX_JSON_DEPTH."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.TENSORFLEET_MAX_JSON_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {limit} levels deep") from None
        if json_depth(data) > limit:
            raise ParseError(f"JSON parse error - nested more than {limit} levels deep")
        return data


# Django raises these while parsing a form; DRF lets them through to Django's bare 400 page.
FORM_LIMITS = (TooManyFieldsSent, TooManyFilesSent, RequestDataTooBig)


class MultiPartParser(parsers.MultiPartParser):
    """DRF's, answering Django's form limits with a 400 that names the limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except FORM_LIMITS as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from None


class FormParser(parsers.FormParser):
    """DRF's, answering Django's form limits with a 400 that names the limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except FORM_LIMITS as exc:
            raise ParseError(f"Form parse error - {exc}") from None


class RequestBodyLimitMiddleware:
    """Answers the bodies Django would misread or refuse without a reason (see the module)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get("CONTENT_LENGTH"):
            return JsonResponse(
                {
                    "detail": "A request body needs a Content-Length header; a chunked body "
                    "(Transfer-Encoding: chunked) is not read. Send the body with its length."
                },
                status=411,
            )
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return JsonResponse({"detail": "The Content-Length header is not a length."}, status=400)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        is_files = meta.get("CONTENT_TYPE", "").startswith("multipart/form-data")
        if limit is not None and not is_files and length > limit:
            return JsonResponse(
                {"detail": f"The request body is {length} bytes; the limit is {limit} bytes (files go as multipart)."},
                status=413,
            )
        return self.get_response(request)


class TemporaryFileUploadHandler(DjangoTemporaryFileUploadHandler):
    """Django's, with a temporary file named without the client's extension (which may be
    longer than a file name can be). The upload keeps the client's name; nothing reads
    the format from the temporary file's name (``dataset_create`` goes by the upload's)."""

    def new_file(self, *args, **kwargs):
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = TemporaryUploadedFile("upload", self.content_type, 0, self.charset, self.content_type_extra)
        self.file.name = self.file_name
