"""Analytics of the service desk: daily rollups kept up to date by a beat task (and rebuilt by
``manage.py rebuild_analytics``), read by the dashboards, their CSV downloads and
``GET /api/v1/analytics/...``. Pages never scan tickets for figures: they read the rollups.
"""
