# grafana pod: nothing of its own to rewrite; common.sed points the
# datasource at the prometheus Service.
