"""The operations dashboard: a single page served at ``/`` of the API port, and analytics.

The page (``static/``) is plain JavaScript modules plus the vendored uPlot chart
library; it reads the operator API and the endpoints in :mod:`csms.dashboard.api`
and :mod:`csms.dashboard.analytics_api`, and refreshes itself from the event
stream when the CSMS has one, else by polling.
"""

from csms.dashboard.service import DashboardService

__all__ = ["DashboardService"]
