# Cluster addresses for the loopback addresses in deploy/local, applied
# after the pod's own script (which turns its own listeners into 0.0.0.0).
# Every other address is a Service in the hopwatch namespace, on the same
# port as in local mode. Kept to `s|old|new|g` lines (and, in
# front-proxy.sed, one line insertion) so that deploy's Go test can apply
# them exactly as busybox sed does.
s|127\.0\.0\.1:8125|statsd-sink:8125|g
s|127\.0\.0\.1:9102|statsd-sink:9102|g
s|127\.0\.0\.1:10000|front-proxy:10000|g
s|127\.0\.0\.1:9901|front-proxy:9901|g
s|127\.0\.0\.1:10001|frontend:10001|g
s|127\.0\.0\.1:9902|frontend:9902|g
s|127\.0\.0\.1:10002|catalog:10002|g
s|127\.0\.0\.1:9903|catalog:9903|g
s|127\.0\.0\.1:10003|inventory:10003|g
s|127\.0\.0\.1:9904|inventory:9904|g
s|127\.0\.0\.1:10004|legacy-pricing:10004|g
s|127\.0\.0\.1:9905|legacy-pricing:9905|g
s|127\.0\.0\.1:9090|prometheus:9090|g
# Prometheus's alerting target: the alertmanager Service.
s|127\.0\.0\.1:9093|alertmanager:9093|g
# The proxies' tracing endpoint (OTLP/gRPC): the jaeger Service.
s|127\.0\.0\.1:4317|jaeger:4317|g
# Grafana's Jaeger datasource (where exemplars open traces): its query service.
s|127\.0\.0\.1:16686|jaeger:16686|g
