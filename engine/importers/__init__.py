"""Importers: other tools' polling definitions turned into statepoll specs.

``statepoll import botocore`` converts the installed botocore's waiters
(needs the ``aws`` extra).
"""
