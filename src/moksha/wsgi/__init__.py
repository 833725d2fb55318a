"""The original Moksha 1.x web API, as a thin face over :mod:`moksha.web` and :mod:`moksha.widgets`.

Packages written for Moksha 1.x import these paths; they run unchanged:

======================================  =============================================
:mod:`moksha.wsgi.widgets.api`          ``LiveWidget`` (a real ToscaWidgets2 widget),
                                        ``get_moksha_socket(config)``
:mod:`moksha.wsgi.widgets.api.live`     the same ``LiveWidget``, by its other path
:mod:`moksha.wsgi.middleware`           ``make_moksha_middleware(app, config)``
:mod:`moksha.wsgi.toscawidgets`         tw2's request-local context, resources and
                                        widgets inside Moksha's pages
======================================  =============================================

It needs the ``compat`` extra (``pip install 'moksha[compat]'``: tw2.core,
Genshi, XStatic-jQuery).  New code uses :mod:`moksha.widgets` and
:class:`moksha.web.MokshaMiddleware`, which need none of them.
"""
