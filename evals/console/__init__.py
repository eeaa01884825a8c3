"""The web console of `signoria serve` (at /console; `--no-console` turns it off).

Server-rendered pages over the same records as `eval report` and `eval compare`: recent
requests with their traces, eval runs with their curves, routing share over time, spend
per key, and a playground that streams from the API itself. Jinja2 templates, one small
stylesheet and one script shipped in the package: no CDN, nothing fetched at run time.
"""

from signoria.evals.console.pages import install

__all__ = ["install"]
