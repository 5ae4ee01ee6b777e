"""The ``aiocouch`` command line (``pip install aiocouch[cli]``)."""
