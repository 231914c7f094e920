"""The Skebby REST API v1.0 client, one module per area of the API.

- ``transport``: login (session key or token), the authenticated call with one re-login on a
  stale key, timeouts, error mapping; :class:`~channels.skebby.transport.SkebbyApi` is the base of
  every area;
- ``errors``, ``models`` (enums and result records), ``wire`` (dates, query values, ids: the
  helpers the areas share);
- areas: ``sending`` (sms, paramsms, order state, scheduled sends), ``history``, ``user``,
  ``contacts`` (and groups), ``blacklist``, ``received`` (received SMS), ``aliases`` (TPOA),
  ``subaccounts``, ``two_factor``, ``landing_pages``.

:class:`channels.skebby_gateway.SkebbyGateway` puts every area together behind one login; import
it, its errors and its types from ``channels.skebby_gateway``.
"""
