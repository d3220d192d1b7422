# inventory pod: the sidecar's listener and admin serve the cluster; the app it
# fronts stays on 127.0.0.1 in the same pod.
s|127\.0\.0\.1:10003|0.0.0.0:10003|g
s|127\.0\.0\.1:9904|0.0.0.0:9904|g
