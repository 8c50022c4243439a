"""Local simulator of Mindee API v2 (document inference), both path generations.

Routes (every one needs ``Authorization: <api key>``, the raw key, no prefix):

========  ===============================================  ===========================
Method    Path                                             Answers
========  ===============================================  ===========================
POST      ``/v2/products/{product}/enqueue``               202 job, 404, 422
POST      ``/v2/inferences/enqueue`` (legacy)              202 job, 422
GET       ``/v2/jobs/{job_id}[?redirect=false]``           200, 302 + ``Location``,
                                                           404, 422
GET       ``/v2/products/{product}/results/{inference}``   200 inference, 404, 422
GET       ``/v2/inferences/{inference_id}`` (legacy)       200 inference, 404, 422
GET       ``/_sim/faults``                                 fault counts (no auth)
========  ===============================================  ===========================

``product`` is one of extraction, classification, crop, ocr, split. The enqueue
form is ``multipart/form-data``: ``model_id`` (UUID, required); exactly one of a
``file`` part, ``url`` (https, at most 2048 characters) or ``file_base64`` (at
least 15 characters); optional ``alias``, ``webhook_ids`` (repeated UUIDs),
``rag``/``raw_text``/``polygon``/``confidence`` (``"true"``/``"false"``),
``text_context`` and ``data_schema`` (a JSON object as a string). The options are
accepted for every product and echoed in the result's ``active_options``.

A job enqueued on the legacy path is an extraction whose inference id equals its
job id: its ``result_url`` is ``/v2/inferences/<job id>``, and
``/v2/products/extraction/results/<job id>`` answers too (as 4.34-4.36 SDKs
call it). A job enqueued on a product path gets its own inference id and its
``result_url`` is ``/v2/products/<product>/results/<inference id>``; the legacy
``/v2/inferences/{id}`` serves any extraction inference by its inference id.
The key is checked before routing, so an unknown path without the key is a 401.

Getting a terminal outcome on purpose (case-insensitive substring of the
uploaded file's name, the ``url`` or the ``alias``; ``sim-failed`` wins over
``sim-processed``):

=========================  =========================================================
Input contains             Terminal outcome
=========================  =========================================================
``sim-failed-invalid``     ``Failed``, ``job.error`` = the ``422-001`` fixture object
``sim-failed``             ``Failed``, ``job.error`` = ``500-012`` "Inference failed"
``sim-processed``          ``Processed``
anything else              seeded mix: 85 % ``Processed``, 15 % ``Failed`` (500-012)
=========================  =========================================================

Timing: a job is ``Processing`` for a seeded 2-6 s (jobs bound to succeed) or
1-3 s (jobs bound to fail), multiplied by ``time_scale``; its state is computed
from the clock at request time. ``GET /v2/jobs/{id}`` answers 200 while
``Processing`` and once ``Failed``; once ``Processed`` it answers 302 with the
full job as its JSON body and ``Location`` = ``result_url`` (200 with
``?redirect=false``).

Our own choices where Mindee documents nothing: a result asked for before the job
is ``Processed``, or of a ``Failed`` job, is a 404 error object; not-found errors
use code ``404-001``, a wrong method ``405-001``, a malformed id in a path
``422-001``; ``filename`` is null for ``file_base64`` uploads and the URL's last
path segment for ``url`` ones; webhooks are never called, each id just gets a
``Processed`` delivery entry in ``job.webhooks`` once the job ends. ``Retry-After``
is only sent with injected 429/503 faults. The inference's fields are
illustrative (an invoice), the same for every product.

The package: ``_models`` (constants, error objects, the fault profile, the job
records), ``_parse`` (the enqueue form), ``_service`` (jobs and route handlers),
``_app`` (``create_app``, the key gate).
"""

from __future__ import annotations

from ._app import create_app
from ._models import PRODUCTS, PROFILE

__all__ = ["PRODUCTS", "PROFILE", "create_app"]
