"""Original Moksha 1.x widgets: see :mod:`moksha.wsgi.widgets.api`."""
