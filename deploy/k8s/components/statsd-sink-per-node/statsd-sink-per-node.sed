# Per-node sinks: the statsd-sink job of deploy/local/prometheus.yml gets a
# target per sink pod from the statsd-sink Service's EndpointSlices. The
# keep rule drops every target that discovery did not find, the job's
# static statsd-sink:9102 among them (that address now reaches one sink
# only). node and pod name the sink; node_id on each series names the proxy.
s|^  - job_name: statsd-sink$|&\n    kubernetes_sd_configs:\n      - role: endpointslice\n        namespaces: {own_namespace: true}\n    relabel_configs:\n      - source_labels: [__meta_kubernetes_service_name, __meta_kubernetes_endpointslice_port_name]\n        regex: statsd-sink;metrics\n        action: keep\n      - source_labels: [__meta_kubernetes_pod_node_name]\n        target_label: node\n      - source_labels: [__meta_kubernetes_pod_name]\n        target_label: pod\n      - target_label: component\n        replacement: statsd-sink|
