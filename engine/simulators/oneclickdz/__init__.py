"""Local simulator of the OneClickDZ "Flexy" API v3: mobile, internet and gift cards.

Routes (every one needs ``X-Access-Token: <api key>``; not ``Authorization``):

======  ==============================================  ===============================
Method  Path                                            Answers
======  ==============================================  ===============================
GET     ``/v3/validate``                                200 key description
GET     ``/v3/account/balance``                         200 ``{"balance"}``
GET     ``/v3/mobile/plans``                            200 ``dynamicPlans``/``fixedPlans``
POST    ``/v3/mobile/send``                             200 ``{"topupId", "topupRef"}``,
                                                        400, 403
GET     ``/v3/mobile/check-id/{topupId}``               200 top-up, 404
GET     ``/v3/mobile/check-ref/{ref}``                  200 top-up, 404
GET     ``/v3/internet/products?type=ADSL|4G``          200 ``{"products", "type"}``, 400
GET     ``/v3/internet/check-number?type=&number=``     200 ``{"ncli", "offre", "type"}``,
                                                        400 ``ERR_PHONE``
POST    ``/v3/internet/send``                           200 ``{"topupId", "topupRef"}``,
                                                        400, 403
GET     ``/v3/internet/check-id/{topupId}``             200 order, 404
GET     ``/v3/internet/check-ref/{ref}``                200 order, 404
GET     ``/v3/gift-cards/catalog``                      200 ``{"categories"}``
GET     ``/v3/gift-cards/checkProduct/{productId}``     200 product with types, 404
POST    ``/v3/gift-cards/placeOrder``                   200 ``{"orderId"}``, 400, 403
GET     ``/v3/gift-cards/checkOrder/{orderId}``         200 order, 404
GET     ``/_sim/faults``                                fault counts (no key needed)
======  ==============================================  ===============================

Every success is HTTP 200 with ``{"success": true, "data": ..., "meta": {"timestamp"},
"requestId": "req_<epoch>_<6 chars>"}``; every error is ``{"success": false, "error":
{"code", "message", "details"?}, "requestId"}``. Ids are 24 hex digits.

Sends: ``/v3/mobile/send`` takes ``plan_code`` (from the plans), ``MSSIDN``
(``0[567]`` + 8 digits; 05 is Ooredoo, 06 Mobilis, 07 Djezzy and must match the plan's
operator), ``amount`` (integer, required and within ``min_amount..max_amount`` for
dynamic plans, ignored for fixed ones) and an optional ``ref``.
``/v3/internet/send`` takes ``type`` (``ADSL`` or ``4G``), ``number`` (ADSL ``0`` + 8
digits, 4G ``213`` + 9 digits), ``value`` (500, 1000, 2000 or 3000) and an optional
``ref``. ``/v3/internet/products`` and ``check-number`` need the ``type`` query
(400 ``ERR_VALIDATION`` without it). ``/v3/gift-cards/placeOrder`` takes
``productId``, ``typeId`` and ``quantity`` (integer >= 1). A ``ref`` already used on
the same service is a 403 ``DUPLICATED_REF``; without one a ``topupRef`` is generated.

The account starts at 100000 DZD. A mobile top-up costs ``amount`` x the plan's
``cost`` (0.98: 300 DZD cost 294, its ``balance_amount``); an internet card costs its
face value; a gift card order costs ``price x quantity``. The balance is debited at
once and credited back when an order reaches ``REFUNDED`` (and, for
``PARTIALLY_FILLED``, by the cards not delivered). A charge above the balance is a 403
``INSUFFICIENT_BALANCE`` (``NO_BALANCE`` when the balance is 0). Internet cards and
gift cards have a stock; a send or order beyond it is a 400 ``OUT_OF_STOCK``, and
undelivered cards go back to stock when the order ends.

Getting a terminal outcome on purpose:

===============================  =========================================================
Input                            Outcome
===============================  =========================================================
``MSSIDN`` ends in ``01``        ``FULFILLED``
``MSSIDN`` ends in ``02``        ``REFUNDED`` with ``refund_message`` and
                                 ``suggested_offers`` (the plan did not match the line)
``MSSIDN`` ends in ``03``        ``UNKNOWN_ERROR``, resolved to ``FULFILLED`` 1-12 h later
``MSSIDN`` ends in ``04``        ``UNKNOWN_ERROR``, resolved to ``REFUNDED`` 1-12 h later
internet ``number`` ends ``01``  ``FULFILLED`` (with ``card_code``, ``num_trans``,
                                 ``date_traitement``)
internet ``number`` ends ``02``  ``REFUNDED``
internet ``number`` ends ``03``  ``QUEUED``, resolved to ``FULFILLED`` 12-48 h later
internet ``number`` ends ``04``  ``QUEUED``, resolved to ``REFUNDED`` 12-48 h later
``typeId`` ``type_001``          ``FULFILLED`` (every card)
``typeId`` ``type_002``          ``PARTIALLY_FILLED`` (a seeded 1..quantity-1 cards; with
                                 ``quantity`` 1 no partial fill is possible, so it ends
                                 ``REFUNDED``, here and in the mix below)
``typeId`` ``type_003``          ``REFUNDED`` (no card)
anything else                    seeded mix. Mobile: 80 % ``FULFILLED``, 12 % ``REFUNDED``
                                 (no ``suggested_offers``), 8 % ``UNKNOWN_ERROR`` (then
                                 70 % ``FULFILLED``). Internet: 80 % ``FULFILLED``, 10 %
                                 ``REFUNDED``, 10 % ``QUEUED`` (then 80 % ``FULFILLED``).
                                 Gift cards (``type_004``, the second product's types):
                                 80 % ``FULFILLED``, 10 % ``PARTIALLY_FILLED``, 10 %
                                 ``REFUNDED``.
===============================  =========================================================

The gift card product ``5f0c0ffee0ddba11c0ffee01`` has the types ``type_001`` ..
``type_004``; ``5f0c0ffee0ddba11c0ffee02`` has ``type_101`` and ``type_102``.

Timing (seeded, uniform, multiplied by ``time_scale``; states are computed from the
clock at request time): mobile ``PENDING`` 2-15 s, ``HANDLING`` 3-8 s, then the
outcome, ``UNKNOWN_ERROR`` lasting 1-12 h; internet ``HANDLING`` 3-45 s, then the
outcome, ``QUEUED`` lasting 12-48 h; gift cards ``HANDLING`` 1-5 s.

Authentication: no token is a 401 ``MISSING_ACCESS_TOKEN``; a wrong one a 401
``INVALID_ACCESS_TOKEN`` whose ``details.attemptsLeft`` counts down from 4. The fifth
wrong token in a row from one client address blocks that address for 15 min (x
``time_scale``): every request from it is then a 403 ``IP_BLOCKED``, even with the
right token. A right token resets the count. The token is checked before routing, so an
unknown path without it is a 401.

Our own choices where OneClickDZ documents nothing: codes ``OUT_OF_STOCK`` (400),
``NOT_FOUND`` for unknown routes and ids (malformed ids are simply not found),
``METHOD_NOT_ALLOWED`` (405, with ``Allow``); ``ERR_VALIDATION`` lists every bad field
in ``details.errors`` and its message is the first one's; ``Retry-After`` is only sent
with injected 429/503 faults; the simulator emits no absolute URL, so
``public_base_url`` has nothing to change.

The package: ``_models`` (constants, plans, products, the fault profile, orders, the
ledger), ``_parse`` (request bodies), ``_core`` (the shared state, envelopes,
authentication, the account), ``_mobile``, ``_internet`` and ``_gift`` (each product
family's handlers), ``_app`` (``create_app``, the token gate).
"""

from __future__ import annotations

from ._app import create_app
from ._models import GIFT_PRODUCT, PROFILE

__all__ = ["GIFT_PRODUCT", "PROFILE", "create_app"]
