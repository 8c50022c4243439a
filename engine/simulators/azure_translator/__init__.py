"""Local simulator of Azure AI Document Translation (batch), both API flavours.

Two flavours share one store of batches (a batch created through one can be read
through the other, as on Azure):

- v1.0 / v1.1: prefix ``/translator/text/batch/v1.0`` (or ``v1.1``), no
  ``api-version``, next-page field ``@nextLink``;
- 2024-05-01 / 2026-03-01: prefix ``/translator/document`` with
  ``?api-version=2024-05-01`` or ``2026-03-01`` (missing or other: 400
  ``InvalidRequest``/``InvalidApiVersion``), next-page field ``nextLink``.

Routes (``{P}`` is a prefix above; every one needs ``Ocp-Apim-Subscription-Key``
with the exact key, else 401 ``{"error": {"code": "401", "message": ...}}``):

========  ================================  =====================================
Method    Path                              Answers
========  ================================  =====================================
POST      ``{P}/batches``                   202, empty body, ``Operation-Location``;
                                            400 ``InvalidRequest``
GET       ``{P}/batches``                   200 page of batch statuses; 400
GET       ``{P}/batches/{id}``              200 batch status; 404
DELETE    ``{P}/batches/{id}``              200 batch now ``Cancelling``; 400
                                            (v1.x, 2024-05-01) or 409 (2026-03-01)
                                            when terminal or cancelling; 404
GET       ``{P}/batches/{id}/documents``    200 page of document statuses; 400; 404
GET       ``{P}/batches/{id}/documents/     200 document status; 404
          {documentId}``
GET       ``/translator/document/formats``  200 supported formats, ``type=document``
          ``?api-version=V&type=T``         or ``glossary`` (else 400)
GET       ``/_sim/faults``                  fault counts (no key needed)
========  ================================  =====================================

Every response carries ``apim-request-id`` and ``X-RequestId``; error responses
carry ``x-ms-error-code`` and the body ``{"error": {"code", "message", "target",
"innerError": {"code", "message"}}}``. The three status GETs carry an ``ETag``
(a hash of the body) and, while the batch is not terminal, ``Retry-After:
round(time_scale)`` (whole seconds, so ``0`` under small scales). Unknown paths
are 404 ``ResourceNotFound``, a wrong method 405.

Listing (documents and batches) accepts ``$top``/``$skip``/``$maxpagesize``/
``$orderBy`` and the bare ``top``/``skip``/``maxpagesize``/``orderby`` (any
case), and the filters ``statuses`` (csv, alias ``status``), ``ids`` (csv of
UUIDs), ``createdDateTimeUtcStart``/``createdDateTimeUtcEnd`` (ISO-8601,
inclusive). It filters, orders by ``createdDateTimeUtc`` (default ``desc``; ties
by id), skips, then takes ``top``; a page holds ``min(maxpagesize, 50)`` items.
While items remain, the absolute next link carries ``skip`` + page length, the
remaining ``top``, the client's ``maxpagesize``, its filters and ordering as it
spelt them, and ``api-version`` on the new flavour; the paging names are
``$``-prefixed if the client used ``$`` names (or none, on v1.x), bare otherwise.
Invalid values are 400 ``InvalidArgument`` with the parameter as ``target``:
``maxpagesize`` outside 1..100, ``top``/``skip`` not an integer in 0..2^31-1, an
order other than ``createdDateTimeUtc [asc|desc]`` (without a direction: ``asc``,
as in OData), a bad date, an unknown status, an id that is not a UUID.

Each input's source holds documents ``doc-000.docx``, ``doc-001.docx``, ... under
the ``sourceUrl``'s path (``source.filter.prefix`` is put in front of the name;
``suffix``, if given, replaces ``.docx``); with ``storageType: File`` the source
is the one document and each ``targetUrl`` is its translation. There is one
document per source document and target language. Query strings (SAS tokens)
are dropped from ``sourcePath`` and ``path``.

Getting a terminal outcome on purpose (read from each ``sourceUrl``):

=======================================  ========================================
Source URL                               Terminal outcome
=======================================  ========================================
contains ``sim-validation``              batch ``ValidationFailed``, no documents,
                                         ``error.innerError.code``
                                         ``InvalidDocumentAccessLevel``
query ``docs=0``                         batch ``ValidationFailed``, no documents,
                                         ``NoTranslatableText``
contains ``sim-failed``                  every document of that input ``Failed``;
                                         the batch ``Failed`` if all its documents
                                         failed
query ``docs=N`` (1..1000)               N source documents (default: seeded 3-10)
query ``faildocs=K``                     the first K source documents (doc-000...)
                                         ``Failed`` in every target language,
                                         error ``InvalidRequest`` /
                                         ``CorruptedDocument``; the others
                                         ``Succeeded``
no ``faildocs``                          seeded mix: each source document fails
                                         with probability 0.05
DELETE before the end                    ``Cancelling``, then ``Cancelled``
=======================================  ========================================

A batch is ``Succeeded`` once every document has finished unless all of them
``Failed`` (then ``Failed``), so a ``Succeeded`` batch may hold failed documents.

Timing (every duration multiplied by ``time_scale``; state computed from the
clock at request time): the batch and its documents are ``NotStarted`` for a
seeded 1-5 s; then every document is ``Running`` for its own seeded 5-40 s
(``progress`` growing from 0 to 1) and ends ``Succeeded`` or ``Failed``; the
batch is ``Running`` until its last document ends. A ``ValidationFailed`` batch
is ``NotStarted`` for the same 1-5 s. A DELETE turns the batch and its
unfinished documents ``Cancelling`` at once and ``Cancelled`` a seeded 1-3 s
later; finished documents keep their state and charge. ``summary`` always counts
the documents' current states (``Cancelling`` documents count as ``inProgress``).

Our own choices where Azure documents nothing: the innerError codes
``InvalidRequestBody`` (bad POST body or trigger), ``InvalidApiVersion``,
``InvalidQueryParameter``, ``BatchNotFound``, ``DocumentNotFound``,
``BatchNotCancellable`` and ``MethodNotAllowed``; a ``Failed`` batch's error
(``InvalidRequest``/``CorruptedDocument``); documents are created 1 µs apart in
input, document, target order; ``Bearer`` tokens are not accepted; faults
injected by ``_base`` lack the request-id and ``x-ms-error-code`` headers.

The package: ``_models`` (constants, error objects, the fault profile, batches and
documents), ``_parse`` (the POST body), ``_query`` (API flavours, listing and
paging), ``_service`` (batches and route handlers), ``_app`` (``create_app``, the
key gate, request ids).
"""

from __future__ import annotations

from ._app import create_app
from ._models import API_VERSIONS, PROFILE, STATUSES

__all__ = ["API_VERSIONS", "PROFILE", "STATUSES", "create_app"]
