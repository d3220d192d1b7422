# front-proxy pod: its listeners and admin serve the cluster. Its upstream
# (the frontend sidecar) becomes a Service name, which a static cluster
# cannot hold: the cluster turns strict_dns.
s|127\.0\.0\.1:10000|0.0.0.0:10000|g
s|127\.0\.0\.1:10443|0.0.0.0:10443|g
s|127\.0\.0\.1:9901|0.0.0.0:9901|g
s|^    connect_timeout:|    type: strict_dns\n    connect_timeout:|
