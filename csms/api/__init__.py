"""The operator HTTP API (``/api/v1``), served by the CSMS process on its own port."""
