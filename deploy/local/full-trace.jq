# full-trace.jq — reads Jaeger's /api/traces answer and is true when one of
# its traces shows every hop of the dev environment, each span the child of
# the one before: the front proxy's server span (the root), its client span,
# then for each service its sidecar's server and client spans and the app's
# own server span (and client span, for the apps that call the next one).
# The catalog calls two services, so the trace is a tree with two branches
# that share the path down to the catalog: one to inventory, one to
# legacy-pricing, whose span jaeger-client-go reports (thrift, not OTLP).
# The Tiltfile's pipeline-check runs it as `jq -e -f full-trace.jq`; by
# hand:
#
#   curl -s 'http://127.0.0.1:16686/api/traces?service=front-proxy&limit=20' | jq -e -f deploy/local/full-trace.jq
#
# Span kinds come from Jaeger's span.kind tag; the services are the
# proxies' tracing.service_name (deploy/local/*.yaml) and the demo apps'.
def trunk: [
  ["front-proxy", "server"], ["front-proxy", "client"],
  ["frontend-sidecar", "server"], ["frontend-sidecar", "client"],
  ["frontend", "server"], ["frontend", "client"],
  ["catalog-sidecar", "server"], ["catalog-sidecar", "client"],
  ["catalog", "server"], ["catalog", "client"]
];
def branches: [
  [["inventory-sidecar", "server"], ["inventory-sidecar", "client"], ["inventory", "server"]],
  [["legacy-pricing-sidecar", "server"], ["legacy-pricing-sidecar", "client"], ["legacy-pricing", "server"]]
];

def kind: [(.tags // [])[] | select(.key == "span.kind") | .value][0] // "";
def parent: [(.references // [])[] | select(.refType == "CHILD_OF") | .spanID][0] // "";

# reaches(hops): the spans of $s that end a chain root → … along hops,
# where each step is a span of the next (service, kind) whose parent is a
# span of the step before. Retries add spans; any one chain is enough.
def reaches($s; $ids; hops):
  [$s[] | select(.svc == hops[0][0] and .kind == hops[0][1] and ($ids[.parent] | not))]
  | reduce hops[1:][] as $h (.;
      [.[].id] as $prev
      | [$s[] | select(.svc == $h[0] and .kind == $h[1] and (.parent as $p | $prev | index([$p])))]);

# complete: every branch hangs off the same trace's trunk.
def complete:
  . as $t
  | [$t.spans[] | {id: .spanID, parent: parent, svc: $t.processes[.processID].serviceName, kind: kind}] as $s
  | ([$s[] | {key: .id, value: true}] | from_entries) as $ids
  | all(branches[]; . as $b | reaches($s; $ids; trunk + $b) | length > 0);

[.data[] | select(complete)] | length > 0
