"""The web dashboard: a static single-page app served by calor, talking to the REST API."""
