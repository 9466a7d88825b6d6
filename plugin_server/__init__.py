"""The gRPC server NLE plugins call (``muvi serve``) and its generated stubs.

Imports ``muvi`` and ``engines``; ``muvi`` itself never imports this package (only
``muvi.cli`` does, lazily, for ``serve`` and ``client``).
"""
